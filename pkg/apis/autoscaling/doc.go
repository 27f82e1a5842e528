// Package autoscaling owns the autoscaling.knative.dev annotations a user puts
// on a revision template to tune its autoscaler: their keys (with the
// camelCase aliases older manifests use), the known classes and metrics, and
// ValidateAnnotations, which checks every value against the rules the
// autoscaler relies on.
package autoscaling
