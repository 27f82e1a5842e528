package v1alpha1

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
)

func TestPodAutoscalerLifecycle(t *testing.T) {
	pa := &PodAutoscaler{}
	pa.Status.InitializeConditions()
	if pa.IsReady() || pa.Status.IsActive() || pa.Status.IsInactive() || pa.Status.ScaleTargetInitialized() {
		t.Fatalf("a new PodAutoscaler: got %+v, want every condition Unknown", pa.Status.Conditions)
	}
	pa.Status.MarkScaleTargetInitialized()
	pa.Status.MarkActive()
	if !pa.IsReady() {
		t.Fatalf("active and initialized: want Ready, got %+v", pa.Status.Conditions)
	}
	pa.Status.MarkInactive("NoTraffic", "The target is not receiving traffic.")
	if pa.IsReady() || !pa.Status.IsInactive() {
		t.Fatalf("inactive: want Ready False and Active False, got %+v", pa.Status.Conditions)
	}
	if got := pa.Status.GetCondition(PodAutoscalerConditionReady).Reason; got != "NoTraffic" {
		t.Errorf("inactive: Ready reason %q, want NoTraffic", got)
	}
	pa.Status.MarkActivating("Queued", "Requests to the target are being buffered as resources are provisioned.")
	if pa.Status.IsActive() || pa.Status.IsInactive() || !pa.Status.ScaleTargetInitialized() {
		t.Fatalf("activating: got %+v", pa.Status.Conditions)
	}
}

func TestPodAutoscalerMode(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	var s PodAutoscalerStatus
	if !s.ActivatorSince().IsZero() {
		t.Fatal("no mode: want no activator time")
	}
	s.SetMode(ModeProxy, t0)
	s.SetMode(ModeProxy, t0.Add(time.Minute)) // unchanged: keeps its time
	if got := s.ActivatorSince(); !got.Equal(t0) {
		t.Fatalf("ActivatorSince = %v, want %v", got, t0)
	}
	s.SetMode(ModeServe, t0.Add(2*time.Minute))
	if !s.ActivatorSince().IsZero() || !s.ModeSince.Time.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("serving: ActivatorSince %v, ModeSince %v", s.ActivatorSince(), s.ModeSince)
	}
	// A status read back from the API has its time truncated to seconds; Mode decides.
	s = PodAutoscalerStatus{Mode: ModeProxy, ModeSince: &metav1.Time{Time: t0}}
	if got := s.ActivatorSince(); !got.Equal(t0) {
		t.Fatalf("read back: ActivatorSince = %v", got)
	}
}

func TestPodAutoscalerClass(t *testing.T) {
	pa := &PodAutoscaler{}
	if got := pa.Class(); got != autoscaling.KPA {
		t.Errorf("no annotation: class %q, want %q", got, autoscaling.KPA)
	}
	pa.Annotations = map[string]string{autoscaling.ClassAnnotationKey: autoscaling.HPA}
	if got := pa.Class(); got != autoscaling.HPA {
		t.Errorf("class %q, want %q", got, autoscaling.HPA)
	}
}
