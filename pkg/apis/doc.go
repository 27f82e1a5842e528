// Package apis owns the pieces shared by every Gantry API group: composable
// validation errors with field paths (FieldError), Knative-compatible status
// conditions and the ConditionSet that derives a happy condition from its
// dependents, a URL type that marshals as a string, and context helpers that
// tell SetDefaults and Validate whether they run for a create or an update.
//
// Nothing in this package does I/O.
//
// +kubebuilder:object:generate=true
package apis
