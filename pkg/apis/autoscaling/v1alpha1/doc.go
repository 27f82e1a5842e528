// Package v1alpha1 is autoscaling.internal.knative.dev/v1alpha1: the PodAutoscaler, one per
// revision, through which the revision controller asks for autoscaling and the autoscaler
// reports the scale it wants, the scale it has, and whether the activator holds the
// revision's route.
//
// +kubebuilder:object:generate=true
// +groupName=autoscaling.internal.knative.dev
package v1alpha1
