package kpa

import (
	"time"

	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/autoscaler/scaling"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
)

// Reasons of the Active condition, as Knative's.
const (
	reasonNoTraffic = "NoTraffic"
	reasonQueued    = "Queued"
)

// applyDecision writes one decision into a PodAutoscaler's status: the scale wanted and the
// scale there is, who takes the requests first (the activator while it must be in the path),
// and Active. A decision that is not Valid changes only the actual scale.
func applyDecision(s *pav1alpha1.PodAutoscalerStatus, r scaling.ScaleResult, ready int32, now time.Time) {
	s.InitializeConditions()
	s.ActualScale = ptr.To(ready)
	if r.Initialized {
		s.MarkScaleTargetInitialized()
	}
	if !r.Valid {
		if s.Mode == "" {
			s.SetMode(pav1alpha1.ModeProxy, now)
		}
		markActivity(s, ptr.Deref(s.DesiredScale, ready), ready, false)
		return
	}
	s.DesiredScale = ptr.To(r.DesiredScale)
	mode := pav1alpha1.ModeServe
	if r.ActivatorInPath {
		mode = pav1alpha1.ModeProxy
	}
	s.SetMode(mode, now)
	markActivity(s, r.DesiredScale, ready, r.Inactive)
}

// markActivity sets Active: False at zero or on the way there, True with ready pods,
// Unknown while pods are wanted and none is ready.
func markActivity(s *pav1alpha1.PodAutoscalerStatus, desired, ready int32, inactive bool) {
	switch {
	case inactive || desired == 0 && ready == 0:
		s.MarkInactive(reasonNoTraffic, "The target is not receiving traffic.")
	case ready > 0:
		s.MarkActive()
	default:
		s.MarkActivating(reasonQueued, "Requests to the target are being buffered as resources are provisioned.")
	}
}
