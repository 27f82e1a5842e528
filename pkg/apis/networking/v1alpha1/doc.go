// Package v1alpha1 owns Gantry's networking.internal.knative.dev/v1alpha1 API: the Ingress, the
// seam between a Route and the data plane, as in Knative. The Route controller writes an
// Ingress's spec (which hosts reach which revisions, by what share); the gateway that programs
// it writes its status. So each condition has one writer: the gateway says the Ingress is
// ready, the Route controller copies that into the Route's IngressReady. It does no I/O.
//
// +groupName=networking.internal.knative.dev
// +kubebuilder:object:generate=true
package v1alpha1
