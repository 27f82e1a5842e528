// Package v1 owns Gantry's serving.knative.dev/v1 API: the Service,
// Configuration, Revision and Route types with Knative's wire format, their
// defaulting (SetDefaults), their validation (Validate) and the status
// helpers controllers use to move their conditions. It does no I/O: the
// webhook and the reconcilers call into it.
//
// +groupName=serving.knative.dev
// +kubebuilder:object:generate=true
package v1
