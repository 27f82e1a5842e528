package hpa

import (
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/utils/ptr"

	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
)

func TestApplyStatus(t *testing.T) {
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name             string
		current, desired int32
		ready            int32
		wantDesired      int32
		wantActive       bool
		wantInitialized  bool
	}{
		{name: "HPA not yet acted, no pod", wantDesired: 2},
		{name: "pods coming", current: 2, desired: 2, wantDesired: 2},
		{name: "serving", current: 2, desired: 3, ready: 2, wantDesired: 3, wantActive: true, wantInitialized: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hpa := &autoscalingv2.HorizontalPodAutoscaler{
				Spec:   autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: ptr.To[int32](2), MaxReplicas: 5},
				Status: autoscalingv2.HorizontalPodAutoscalerStatus{CurrentReplicas: tt.current, DesiredReplicas: tt.desired},
			}
			var s pav1alpha1.PodAutoscalerStatus
			applyStatus(&s, hpa, tt.ready, now)
			if got := ptr.Deref(s.DesiredScale, -1); got != tt.wantDesired {
				t.Errorf("desired scale %d, want %d", got, tt.wantDesired)
			}
			if got := ptr.Deref(s.ActualScale, -1); got != tt.ready {
				t.Errorf("actual scale %d, want the %d ready pods", got, tt.ready)
			}
			if s.IsActive() != tt.wantActive || s.ScaleTargetInitialized() != tt.wantInitialized {
				t.Errorf("active %v, initialized %v; want %v, %v (conditions %+v)", s.IsActive(), s.ScaleTargetInitialized(), tt.wantActive, tt.wantInitialized, s.Conditions)
			}
			if s.Mode != pav1alpha1.ModeServe {
				t.Errorf("mode %q, want Serve: an HPA never takes a revision to zero", s.Mode)
			}
		})
	}
}
