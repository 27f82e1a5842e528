package v1

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/gantry-run/gantry/pkg/apis"
)

func TestServiceLifecycle(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	withClock(t, clock)

	s := &Service{}
	ss := &s.Status
	ss.InitializeConditions()
	wantCondition(t, ss.GetCondition(ServiceConditionReady), corev1.ConditionUnknown, "", clock.t)

	cfg := &ConfigurationStatus{}
	cfg.InitializeConditions()
	cfg.SetLatestCreatedRevisionName("s-00001")
	route := &RouteStatus{}
	route.InitializeConditions()

	clock.t = clock.t.Add(time.Second)
	ss.PropagateConfigurationStatus(cfg)
	ss.PropagateRouteStatus(route)
	if ss.LatestCreatedRevisionName != "s-00001" {
		t.Errorf("latestCreatedRevisionName = %q", ss.LatestCreatedRevisionName)
	}
	if ss.IsReady() {
		t.Error("not ready before the children are")
	}

	cfg.MarkLatestCreatedFailed("s-00001", "boom")
	ss.PropagateConfigurationStatus(cfg)
	wantCondition(t, ss.GetCondition(ServiceConditionReady), corev1.ConditionFalse, ReasonRevisionFailed, clock.t)

	clock.t = clock.t.Add(time.Second)
	cfg.SetLatestReadyRevisionName("s-00001")
	route.MarkTrafficAssigned()
	route.MarkIngressReady()
	route.URL = apis.HTTP("s.default.localhost")
	route.Traffic = []TrafficTarget{{RevisionName: "s-00001", Percent: ptr[int64](100), LatestRevision: ptr(true)}}
	ss.PropagateConfigurationStatus(cfg)
	ss.PropagateRouteStatus(route)
	wantCondition(t, ss.GetCondition(ServiceConditionReady), corev1.ConditionTrue, "", clock.t)
	if diff := cmp.Diff(route.RouteStatusFields, ss.RouteStatusFields); diff != "" {
		t.Errorf("route fields (-want +got):\n%s", diff)
	}
	route.Traffic[0].RevisionName = "changed"
	if ss.Traffic[0].RevisionName != "s-00001" {
		t.Error("PropagateRouteStatus must copy, not alias")
	}

	ss.MarkRouteNotReconciled()
	wantCondition(t, ss.GetCondition(ServiceConditionRoutesReady), corev1.ConditionUnknown, ReasonOutOfDate, clock.t)
	ss.MarkConfigurationNotReconciled()
	ss.MarkConfigurationNotOwned("s")
	wantCondition(t, ss.GetCondition(ServiceConditionReady), corev1.ConditionFalse, "NotOwned", clock.t)
	ss.MarkRouteNotOwned("s")
	ss.MarkRevisionNameTaken("s-v1")
	ss.PropagateRouteStatus(&RouteStatus{})
	if !ss.GetCondition(ServiceConditionRoutesReady).IsUnknown() {
		t.Error("a route without conditions makes RoutesReady Unknown")
	}
	if gvk := s.GetGroupVersionKind(); gvk.Kind != "Service" {
		t.Errorf("GVK = %v", gvk)
	}
}
