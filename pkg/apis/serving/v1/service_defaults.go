package v1

import "context"

// SetDefaults fills the Service's template and, when no traffic is given,
// sends all of it to the latest ready Revision.
func (s *Service) SetDefaults(ctx context.Context) {
	s.Spec.SetDefaults(ctx)
}

// SetDefaults fills the template and the traffic targets.
func (ss *ServiceSpec) SetDefaults(ctx context.Context) {
	ss.ConfigurationSpec.SetDefaults(ctx)
	if len(ss.Traffic) == 0 {
		ss.Traffic = []TrafficTarget{{Percent: ptr[int64](100), LatestRevision: ptr(true)}}
	}
	ss.RouteSpec.SetDefaults(ctx)
}
