package v1

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestConfigurationLifecycle(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	withClock(t, clock)

	c := &Configuration{}
	cs := &c.Status
	cs.InitializeConditions()
	wantCondition(t, cs.GetCondition(ConfigurationConditionReady), corev1.ConditionUnknown, "", clock.t)

	clock.t = clock.t.Add(time.Second)
	cs.SetLatestCreatedRevisionName("cfg-00001")
	cs.SetLatestReadyRevisionName("cfg-00001")
	wantCondition(t, cs.GetCondition(ConfigurationConditionReady), corev1.ConditionTrue, "", clock.t)
	if !c.IsReady() {
		t.Error("IsReady")
	}

	clock.t = clock.t.Add(time.Second)
	cs.SetLatestCreatedRevisionName("cfg-00002")
	wantCondition(t, cs.GetCondition(ConfigurationConditionReady), corev1.ConditionUnknown, "", clock.t)
	if cs.LatestReadyRevisionName != "cfg-00001" {
		t.Error("the latest ready revision stays until the new one is ready")
	}

	cs.MarkLatestCreatedFailed("cfg-00002", "boom")
	wantCondition(t, cs.GetCondition(ConfigurationConditionReady), corev1.ConditionFalse, ReasonRevisionFailed, clock.t)
	if got, want := cs.GetCondition(ConfigurationConditionReady).Message, `Revision "cfg-00002" failed with message: boom.`; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}

	cs.MarkRevisionCreationFailed("quota exceeded")
	if got, want := cs.GetCondition(ConfigurationConditionReady).Message, "Revision creation failed with message: quota exceeded."; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}

	cs.MarkLatestReadyDeleted()
	if cs.LatestReadyRevisionName != "" || !cs.GetCondition(ConfigurationConditionReady).IsFalse() {
		t.Error("MarkLatestReadyDeleted")
	}
	if gvk := c.GetGroupVersionKind(); gvk.Kind != "Configuration" || gvk.Group != GroupName {
		t.Errorf("GVK = %v", gvk)
	}
}
