package apis

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type fakeClock struct{ t time.Time }

func (f *fakeClock) Now() time.Time { return f.t }

const (
	depA ConditionType = "A"
	depB ConditionType = "B"
	info ConditionType = "Info"
)

func TestConditionSetTransitions(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	t0 := metav1.NewTime(clock.t)
	cs := NewLivingConditionSet(depA, depB).WithClock(clock)
	s := &Status{}
	m := cs.Manage(s)

	m.InitializeConditions()
	want := Conditions{
		{Type: depA, Status: corev1.ConditionUnknown, LastTransitionTime: t0},
		{Type: depB, Status: corev1.ConditionUnknown, LastTransitionTime: t0},
		{Type: ConditionReady, Status: corev1.ConditionUnknown, LastTransitionTime: t0},
	}
	if diff := cmp.Diff(want, s.Conditions); diff != "" {
		t.Fatalf("after InitializeConditions (-want +got):\n%s", diff)
	}

	clock.t = clock.t.Add(time.Minute)
	t1 := metav1.NewTime(clock.t)
	m.MarkTrue(depA)
	if m.IsHappy() {
		t.Fatal("happy with B still Unknown")
	}
	m.MarkFalse(depB, "Broken", "b is %s", "broken")
	ready := m.GetTopLevelCondition()
	if diff := cmp.Diff(&Condition{Type: ConditionReady, Status: corev1.ConditionFalse, Reason: "Broken",
		Message: "b is broken", LastTransitionTime: t1}, ready); diff != "" {
		t.Fatalf("Ready after MarkFalse(B) (-want +got):\n%s", diff)
	}

	// Unknown on A does not hide B's failure.
	m.MarkUnknown(depA, "Checking", "")
	if !m.GetTopLevelCondition().IsFalse() {
		t.Fatal("Ready must stay False while B is False")
	}

	clock.t = clock.t.Add(time.Minute)
	t2 := metav1.NewTime(clock.t)
	m.MarkTrue(depA)
	m.MarkTrue(depB)
	if !m.IsHappy() {
		t.Fatal("want happy when every dependent is True")
	}
	if got := m.GetTopLevelCondition().LastTransitionTime; !got.Equal(&t2) {
		t.Errorf("Ready lastTransitionTime = %v, want %v", got, t2)
	}

	// Marking True again is no transition: the time stays.
	clock.t = clock.t.Add(time.Minute)
	m.MarkTrue(depB)
	if got := m.GetCondition(depB).LastTransitionTime; !got.Equal(&t2) {
		t.Errorf("B lastTransitionTime moved to %v without a transition", got)
	}

	// A non-dependent condition is informational and does not touch Ready.
	m.MarkFalse(info, "Scaled", "to zero")
	if !m.IsHappy() {
		t.Error("an informational condition must not make Ready False")
	}
	if got := m.GetCondition(info).Severity; got != ConditionSeverityInfo {
		t.Errorf("info severity = %q, want %q", got, ConditionSeverityInfo)
	}
	m.ClearCondition(info)
	m.ClearCondition(depA)
	if m.GetCondition(info) != nil || m.GetCondition(depA) == nil {
		t.Error("ClearCondition must remove only non-dependent conditions")
	}
}

func TestInitializeConditionsKeepsHappy(t *testing.T) {
	s := &Status{Conditions: Conditions{{Type: ConditionReady, Status: corev1.ConditionTrue}}}
	NewLivingConditionSet(depA).Manage(s).InitializeConditions()
	if !s.GetCondition(depA).IsTrue() {
		t.Errorf("dependent of a True happy condition = %v, want True", s.GetCondition(depA))
	}
}

func TestConditionNilHelpers(t *testing.T) {
	var c *Condition
	if c.IsTrue() || c.IsFalse() || !c.IsUnknown() || c.GetReason() != "" || c.GetMessage() != "" {
		t.Error("nil condition helpers")
	}
	var s *Status
	if s.GetCondition(ConditionReady) != nil {
		t.Error("nil status has no conditions")
	}
	NewLivingConditionSet().Manage(nil).InitializeConditions()
}
