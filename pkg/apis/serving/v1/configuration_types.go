package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/pkg/apis"
)

// Configuration holds the latest desired state of a workload; every change of
// its template stamps a new Revision.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=config;cfg,categories=all;knative;serving
// +kubebuilder:printcolumn:name="LatestCreated",type=string,JSONPath=".status.latestCreatedRevisionName"
// +kubebuilder:printcolumn:name="LatestReady",type=string,JSONPath=".status.latestReadyRevisionName"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
type Configuration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec ConfigurationSpec `json:"spec,omitempty"`

	// +optional
	Status ConfigurationStatus `json:"status,omitempty"`
}

// ConfigurationSpec is the desired state of a Configuration.
type ConfigurationSpec struct {
	// Template is the Revision to stamp.
	//
	// Its schema is left open (type: object, unknown fields preserved) as
	// Knative's own CRDs do. The full corev1.PodSpec schema would make each
	// CRD several hundred kilobytes, tie it to one Kubernetes release's
	// PodSpec, and let the API server prune fields of newer clients silently
	// before the webhook could refuse them by name. The webhook's Validate is
	// the authority on what a template may hold.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	Template RevisionTemplateSpec `json:"template"`
}

// Configuration condition types.
const (
	// ConfigurationConditionReady is True when the latest created Revision
	// is ready.
	ConfigurationConditionReady = apis.ConditionReady
)

// ConfigurationStatusFields are the status fields a Service shares with its
// Configuration.
type ConfigurationStatusFields struct {
	// LatestReadyRevisionName is the newest Revision stamped from this
	// Configuration that became ready.
	// +optional
	LatestReadyRevisionName string `json:"latestReadyRevisionName,omitempty"`

	// LatestCreatedRevisionName is the newest Revision stamped from this
	// Configuration, ready or not.
	// +optional
	LatestCreatedRevisionName string `json:"latestCreatedRevisionName,omitempty"`
}

// ConfigurationStatus is the observed state of a Configuration.
type ConfigurationStatus struct {
	apis.Status `json:",inline"`

	ConfigurationStatusFields `json:",inline"`
}

// ConfigurationList is a list of Configurations.
//
// +kubebuilder:object:root=true
type ConfigurationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Configuration `json:"items"`
}
