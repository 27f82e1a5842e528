// Package v1alpha1 is serverless.gantry.dev/v1alpha1: the ServerlessProfile, which selects
// pods to run each alone on a serverless node of its own, sized from a fixed menu and metered
// per second, as EKS on Fargate's profiles do; and the names (labels, annotations, scheduler,
// taint) through which the admission webhook, the serverless scheduler, the node and metering
// agree on a selected pod.
//
// +kubebuilder:object:generate=true
// +groupName=serverless.gantry.dev
package v1alpha1
