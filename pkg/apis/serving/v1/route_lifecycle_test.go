package v1

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestRouteLifecycle(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	withClock(t, clock)

	r := &Route{}
	rs := &r.Status
	rs.InitializeConditions()
	wantCondition(t, rs.GetCondition(RouteConditionAllTrafficAssigned), corev1.ConditionUnknown, "", clock.t)
	wantCondition(t, rs.GetCondition(RouteConditionIngressReady), corev1.ConditionUnknown, "", clock.t)

	clock.t = clock.t.Add(time.Second)
	rs.MarkMissingTrafficTarget("Revision", "r-1")
	wantCondition(t, rs.GetCondition(RouteConditionReady), corev1.ConditionFalse, "RevisionMissing", clock.t)
	if got, want := rs.GetCondition(RouteConditionAllTrafficAssigned).Message, `Revision "r-1" referenced in traffic not found.`; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	rs.MarkMissingTrafficTarget("Configuration", "c")
	wantCondition(t, rs.GetCondition(RouteConditionAllTrafficAssigned), corev1.ConditionFalse, "ConfigurationMissing", clock.t)

	clock.t = clock.t.Add(time.Second)
	rs.MarkTrafficAssigned()
	rs.MarkIngressNotReady(ReasonIngressNotConfigured, "programming the gateway")
	wantCondition(t, rs.GetCondition(RouteConditionReady), corev1.ConditionUnknown, ReasonIngressNotConfigured, clock.t)

	clock.t = clock.t.Add(time.Second)
	rs.MarkIngressReady()
	wantCondition(t, rs.GetCondition(RouteConditionReady), corev1.ConditionTrue, "", clock.t)
	if !r.IsReady() {
		t.Error("IsReady")
	}

	rs.MarkConfigurationNotReady("c")
	wantCondition(t, rs.GetCondition(RouteConditionReady), corev1.ConditionUnknown, "RevisionMissing", clock.t)
	rs.MarkConfigurationFailed("c")
	rs.MarkRevisionNotReady("r")
	if !rs.GetCondition(RouteConditionReady).IsUnknown() {
		t.Error("MarkRevisionNotReady makes Ready Unknown")
	}
	rs.MarkRevisionFailed("r")
	rs.MarkIngressFailed("Failed", "x")
	if !rs.GetCondition(RouteConditionReady).IsFalse() {
		t.Error("MarkIngressFailed makes Ready False")
	}
	if gvk := r.GetGroupVersionKind(); gvk.Kind != "Route" {
		t.Errorf("GVK = %v", gvk)
	}
}
