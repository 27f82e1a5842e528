package apis

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConditionType names a condition, e.g. Ready.
type ConditionType string

// ConditionReady is the happy condition of every living ConditionSet.
const ConditionReady ConditionType = "Ready"

// ConditionSeverity says how much a False condition matters. Dependents of
// the happy condition have severity Error (written as the empty string);
// other conditions are informational.
type ConditionSeverity string

// The severities Knative defines.
const (
	ConditionSeverityError   ConditionSeverity = ""
	ConditionSeverityWarning ConditionSeverity = "Warning"
	ConditionSeverityInfo    ConditionSeverity = "Info"
)

// Condition is one observation of an object's state. Its JSON is that of
// Knative's duck-typed apis.Condition.
type Condition struct {
	// Type of the condition.
	Type ConditionType `json:"type"`
	// Status is True, False or Unknown.
	Status corev1.ConditionStatus `json:"status"`
	// Severity with which to treat a False status.
	// +optional
	Severity ConditionSeverity `json:"severity,omitempty"`
	// LastTransitionTime is when Status last changed.
	// +optional
	LastTransitionTime metav1.Time `json:"lastTransitionTime,omitempty"`
	// Reason is a one-word CamelCase reason for the last transition.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message is a human-readable explanation of the last transition.
	// +optional
	Message string `json:"message,omitempty"`
}

// IsTrue reports whether c is non-nil and True.
func (c *Condition) IsTrue() bool { return c != nil && c.Status == corev1.ConditionTrue }

// IsFalse reports whether c is non-nil and False.
func (c *Condition) IsFalse() bool { return c != nil && c.Status == corev1.ConditionFalse }

// IsUnknown reports whether c is nil or Unknown.
func (c *Condition) IsUnknown() bool { return c == nil || c.Status == corev1.ConditionUnknown }

// GetReason returns the reason, or "" for a nil condition.
func (c *Condition) GetReason() string {
	if c == nil {
		return ""
	}
	return c.Reason
}

// GetMessage returns the message, or "" for a nil condition.
func (c *Condition) GetMessage() string {
	if c == nil {
		return ""
	}
	return c.Message
}

// Conditions is the list of an object's conditions.
type Conditions []Condition

// Status is the part of status every Knative-style object has. Types inline
// it into their own status.
type Status struct {
	// ObservedGeneration is the metadata.generation the controller last acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions are the latest observations of the object's state.
	// +optional
	Conditions Conditions `json:"conditions,omitempty"`
	// Annotations carry controller-private state.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// GetCondition returns the condition of type t, or nil.
func (s *Status) GetCondition(t ConditionType) *Condition {
	if s == nil {
		return nil
	}
	for i := range s.Conditions {
		if s.Conditions[i].Type == t {
			return &s.Conditions[i]
		}
	}
	return nil
}

// Addressable is how an object is reached: status.address of Knative types.
type Addressable struct {
	// Name of the address, when an object has several.
	// +optional
	Name *string `json:"name,omitempty"`
	// URL of the address.
	// +optional
	URL *URL `json:"url,omitempty"`
	// CACerts is the PEM bundle that verifies the address's TLS certificate.
	// +optional
	CACerts *string `json:"CACerts,omitempty"`
	// Audience for OIDC tokens sent to the address.
	// +optional
	Audience *string `json:"audience,omitempty"`
}
