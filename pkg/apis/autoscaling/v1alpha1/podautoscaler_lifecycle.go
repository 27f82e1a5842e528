package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gantry-run/gantry/pkg/apis"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
)

var podCondSet = apis.NewLivingConditionSet(
	PodAutoscalerConditionActive,
	PodAutoscalerConditionScaleTargetInitialized,
)

// GetConditionSet returns the conditions a PodAutoscaler is judged by.
func (*PodAutoscaler) GetConditionSet() apis.ConditionSet { return podCondSet }

// GetGroupVersionKind returns autoscaling.internal.knative.dev/v1alpha1 PodAutoscaler.
func (*PodAutoscaler) GetGroupVersionKind() schema.GroupVersionKind {
	return SchemeGroupVersion.WithKind("PodAutoscaler")
}

// Class is the autoscaler that owns the PodAutoscaler: its class annotation, KPA when unset.
func (pa *PodAutoscaler) Class() string {
	if c := pa.Annotations[autoscaling.ClassAnnotationKey]; c != "" {
		return c
	}
	return autoscaling.KPA
}

// IsReady reports whether the status is for the current generation and Ready.
func (pa *PodAutoscaler) IsReady() bool {
	return pa.Generation == pa.Status.ObservedGeneration && pa.Status.manage().IsHappy()
}

func (s *PodAutoscalerStatus) manage() apis.ConditionManager { return podCondSet.Manage(&s.Status) }

// InitializeConditions sets every unset condition to Unknown.
func (s *PodAutoscalerStatus) InitializeConditions() { s.manage().InitializeConditions() }

// GetCondition returns the condition of type t, or nil.
func (s *PodAutoscalerStatus) GetCondition(t apis.ConditionType) *apis.Condition {
	return s.manage().GetCondition(t)
}

// MarkActive records that the revision has pods for its traffic.
func (s *PodAutoscalerStatus) MarkActive() { s.manage().MarkTrue(PodAutoscalerConditionActive) }

// MarkActivating records that the revision is waiting for pods.
func (s *PodAutoscalerStatus) MarkActivating(reason, message string) {
	s.manage().MarkUnknown(PodAutoscalerConditionActive, reason, "%s", message)
}

// MarkInactive records that the revision is at zero, or on its way there.
func (s *PodAutoscalerStatus) MarkInactive(reason, message string) {
	s.manage().MarkFalse(PodAutoscalerConditionActive, reason, "%s", message)
}

// MarkScaleTargetInitialized records that the revision has once reached its initial scale.
func (s *PodAutoscalerStatus) MarkScaleTargetInitialized() {
	s.manage().MarkTrue(PodAutoscalerConditionScaleTargetInitialized)
}

// ScaleTargetInitialized reports whether the revision has once reached its initial scale.
func (s *PodAutoscalerStatus) ScaleTargetInitialized() bool {
	return s.GetCondition(PodAutoscalerConditionScaleTargetInitialized).IsTrue()
}

// IsActive reports whether Active is True.
func (s *PodAutoscalerStatus) IsActive() bool {
	return s.GetCondition(PodAutoscalerConditionActive).IsTrue()
}

// IsInactive reports whether Active is False: the revision is at zero or going there.
func (s *PodAutoscalerStatus) IsInactive() bool {
	return s.GetCondition(PodAutoscalerConditionActive).IsFalse()
}

// SetMode records who takes the revision's requests first, and since when.
func (s *PodAutoscalerStatus) SetMode(m Mode, now time.Time) {
	if s.Mode == m && s.ModeSince != nil {
		return
	}
	s.Mode = m
	s.ModeSince = &metav1.Time{Time: now}
}

// ActivatorSince is when the activator took the revision's route over; zero while the pods
// serve it.
func (s *PodAutoscalerStatus) ActivatorSince() time.Time {
	if s.Mode != ModeProxy || s.ModeSince == nil {
		return time.Time{}
	}
	return s.ModeSince.Time
}
