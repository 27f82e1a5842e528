package v1

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

func TestRevisionLifecycle(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	withClock(t, clock)
	t0 := clock.t

	r := &Revision{}
	rs := &r.Status
	rs.InitializeConditions()
	for _, c := range []struct {
		name string
		got  corev1.ConditionStatus
	}{
		{"Ready", rs.GetCondition(RevisionConditionReady).Status},
		{"ResourcesAvailable", rs.GetCondition(RevisionConditionResourcesAvailable).Status},
		{"ContainerHealthy", rs.GetCondition(RevisionConditionContainerHealthy).Status},
	} {
		if c.got != corev1.ConditionUnknown {
			t.Errorf("%s = %s after InitializeConditions, want Unknown", c.name, c.got)
		}
	}
	if rs.GetCondition(RevisionConditionActive) != nil {
		t.Error("Active is informational and not initialised")
	}

	clock.t = t0.Add(10 * time.Second)
	rs.PropagateDeploymentStatus(&appsv1.DeploymentStatus{Conditions: []appsv1.DeploymentCondition{
		{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue},
	}})
	wantCondition(t, rs.GetCondition(RevisionConditionResourcesAvailable), corev1.ConditionUnknown, ReasonDeploying, clock.t)

	clock.t = t0.Add(20 * time.Second)
	rs.PropagateDeploymentStatus(&appsv1.DeploymentStatus{Conditions: []appsv1.DeploymentCondition{
		{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue},
	}})
	rs.MarkContainerHealthyTrue()
	rs.MarkActiveTrue()
	if !rs.IsReady() {
		t.Fatalf("want Ready, got %+v", rs.Conditions)
	}
	wantCondition(t, rs.GetCondition(RevisionConditionReady), corev1.ConditionTrue, "", clock.t)

	// Scaling to zero leaves the Revision Ready.
	clock.t = t0.Add(time.Minute)
	rs.MarkActiveFalse(ReasonNoTraffic, "The target is not receiving traffic.")
	if !rs.IsReady() {
		t.Error("a Revision scaled to zero stays Ready")
	}
	wantCondition(t, rs.GetCondition(RevisionConditionActive), corev1.ConditionFalse, ReasonNoTraffic, clock.t)

	clock.t = t0.Add(2 * time.Minute)
	rs.MarkContainerExited(1, "boom")
	wantCondition(t, rs.GetCondition(RevisionConditionReady), corev1.ConditionFalse, ReasonExitCode, clock.t)
	if got, want := rs.GetCondition(RevisionConditionReady).Message, "Container failed with: boom (exit code 1)"; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
	if !rs.IsFailed() {
		t.Error("IsFailed")
	}

	rs.PropagateDeploymentStatus(&appsv1.DeploymentStatus{Conditions: []appsv1.DeploymentCondition{
		{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Message: "deadline"},
	}})
	wantCondition(t, rs.GetCondition(RevisionConditionResourcesAvailable), corev1.ConditionFalse, ReasonProgressDeadline, clock.t)

	rs.PropagateDeploymentStatus(&appsv1.DeploymentStatus{Conditions: []appsv1.DeploymentCondition{
		{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate", Message: "quota"},
	}})
	wantCondition(t, rs.GetCondition(RevisionConditionResourcesAvailable), corev1.ConditionFalse, "FailedCreate", clock.t)

	rs.MarkResourcesAvailableFalse("X", "y")
	rs.MarkContainerMissing("image not found")
	wantCondition(t, rs.GetCondition(RevisionConditionContainerHealthy), corev1.ConditionFalse, ReasonContainerMissing, clock.t)
	rs.MarkResourcesAvailableUnknown("A", "b")
	rs.MarkContainerHealthyUnknown("A", "b")
	rs.MarkActiveUnknown(ReasonActivating, "")
	if rs.IsReady() {
		t.Error("not ready while unknown")
	}

	if gvk := r.GetGroupVersionKind(); gvk.String() != "serving.knative.dev/v1, Kind=Revision" {
		t.Errorf("GVK = %v", gvk)
	}
	if r.GetConditionSet().Happy() != RevisionConditionReady {
		t.Error("happy condition")
	}
	r.Generation, r.Status.ObservedGeneration = 2, 1
	if r.IsReady() {
		t.Error("a stale status is not ready")
	}
}
