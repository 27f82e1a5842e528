package v1

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRouteDefaults(t *testing.T) {
	r := &Route{Spec: RouteSpec{Traffic: []TrafficTarget{
		{ConfigurationName: "c", Percent: ptr[int64](90)},
		{RevisionName: "c-1", Percent: ptr[int64](10)},
		{RevisionName: "c-2", LatestRevision: ptr(false)},
	}}}
	r.SetDefaults(context.Background())
	want := []TrafficTarget{
		{ConfigurationName: "c", Percent: ptr[int64](90), LatestRevision: ptr(true)},
		{RevisionName: "c-1", Percent: ptr[int64](10), LatestRevision: ptr(false)},
		{RevisionName: "c-2", LatestRevision: ptr(false)},
	}
	if diff := cmp.Diff(want, r.Spec.Traffic); diff != "" {
		t.Errorf("traffic (-want +got):\n%s", diff)
	}

	empty := &Route{}
	empty.SetDefaults(context.Background())
	if empty.Spec.Traffic != nil {
		t.Errorf("a Route gets no default traffic, got %v", empty.Spec.Traffic)
	}
}
