package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/pkg/apis"
)

// Service manages a workload end to end: it owns one Configuration and one
// Route of its own name, so every change of its template becomes a Revision
// and its traffic follows the split it declares.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ksvc;kservice,categories=all;knative;serving
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=".status.url"
// +kubebuilder:printcolumn:name="LatestCreated",type=string,JSONPath=".status.latestCreatedRevisionName"
// +kubebuilder:printcolumn:name="LatestReady",type=string,JSONPath=".status.latestReadyRevisionName"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
type Service struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec ServiceSpec `json:"spec,omitempty"`

	// +optional
	Status ServiceStatus `json:"status,omitempty"`
}

// ServiceSpec is a Configuration's spec and a Route's spec together.
type ServiceSpec struct {
	ConfigurationSpec `json:",inline"`

	RouteSpec `json:",inline"`
}

// Service condition types.
const (
	// ServiceConditionReady is True when the Configuration and the Route are.
	ServiceConditionReady = apis.ConditionReady
	// ServiceConditionConfigurationsReady mirrors the Configuration's Ready.
	ServiceConditionConfigurationsReady apis.ConditionType = "ConfigurationsReady"
	// ServiceConditionRoutesReady mirrors the Route's Ready.
	ServiceConditionRoutesReady apis.ConditionType = "RoutesReady"
)

// ServiceStatus is the observed state of a Service.
type ServiceStatus struct {
	apis.Status `json:",inline"`

	ConfigurationStatusFields `json:",inline"`

	RouteStatusFields `json:",inline"`
}

// ServiceList is a list of Services.
//
// +kubebuilder:object:root=true
type ServiceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Service `json:"items"`
}
