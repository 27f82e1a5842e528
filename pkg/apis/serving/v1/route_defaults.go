package v1

import "context"

// SetDefaults fills the unset fields of the Route's traffic targets.
func (r *Route) SetDefaults(ctx context.Context) {
	r.Spec.SetDefaults(ctx)
}

// SetDefaults fills the unset fields of every traffic target.
func (rs *RouteSpec) SetDefaults(ctx context.Context) {
	for i := range rs.Traffic {
		rs.Traffic[i].SetDefaults(ctx)
	}
}

// SetDefaults makes a target without a revisionName follow the latest
// ready Revision.
func (tt *TrafficTarget) SetDefaults(context.Context) {
	if tt.LatestRevision == nil {
		tt.LatestRevision = ptr(tt.RevisionName == "")
	}
}
