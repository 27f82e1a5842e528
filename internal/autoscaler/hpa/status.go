package hpa

import (
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/utils/ptr"

	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
)

// reasonQueued is the Active condition's reason while the target has no pod yet.
const reasonQueued = "Queued"

// applyStatus writes what the HPA reports into a PodAutoscaler's status: the scale it wants,
// the ready pods of the target (ready), Active while there is one, ScaleTargetInitialized
// from the first on. The
// pods take requests directly (mode Serve): an HPA never scales to zero, so the activator
// need not hold a revision's route.
func applyStatus(s *pav1alpha1.PodAutoscalerStatus, hpa *autoscalingv2.HorizontalPodAutoscaler, ready int32, now time.Time) {
	s.InitializeConditions()
	s.SetMode(pav1alpha1.ModeServe, now)
	desired := hpa.Status.DesiredReplicas
	if desired == 0 {
		// The HPA controller has not acted yet: it wants what it will start from.
		desired = max(hpa.Status.CurrentReplicas, ptr.Deref(hpa.Spec.MinReplicas, 1))
	}
	s.DesiredScale = ptr.To(desired)
	s.ActualScale = ptr.To(ready)
	if ready > 0 {
		s.MarkScaleTargetInitialized()
		s.MarkActive()
		return
	}
	s.MarkActivating(reasonQueued, "Requests to the target are being buffered as resources are provisioned.")
}
