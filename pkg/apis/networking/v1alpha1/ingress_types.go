package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/pkg/apis"
)

// Ingress says which hosts reach which revisions and by what share: what a Route asks of the
// data plane.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=kingress;king,categories=knative-internal;networking
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
type Ingress struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec IngressSpec `json:"spec,omitempty"`

	// +optional
	Status IngressStatus `json:"status,omitempty"`
}

// IngressSpec lists the rules of an Ingress.
type IngressSpec struct {
	// Rules match requests by host (and header) and split them over backends.
	// +optional
	Rules []IngressRule `json:"rules,omitempty"`
}

// IngressVisibility says from where a rule's hosts answer.
type IngressVisibility string

// Visibilities.
const (
	// IngressVisibilityExternalIP hosts answer on the gateway's public address and to pods.
	IngressVisibilityExternalIP IngressVisibility = "ExternalIP"
	// IngressVisibilityClusterLocal hosts answer only requests that come from pods.
	IngressVisibilityClusterLocal IngressVisibility = "ClusterLocal"
)

// IngressRule sends requests for its hosts to its paths' backends.
type IngressRule struct {
	// Hosts are matched against the request's host, without the port.
	Hosts []string `json:"hosts,omitempty"`

	// Visibility says from where the hosts answer.
	// +kubebuilder:validation:Enum=ExternalIP;ClusterLocal
	Visibility IngressVisibility `json:"visibility,omitempty"`

	// HTTP holds the rule's paths.
	HTTP *HTTPIngressRuleValue `json:"http,omitempty"`
}

// HTTPIngressRuleValue lists the paths of a rule; the first whose headers match serves.
type HTTPIngressRuleValue struct {
	Paths []HTTPIngressPath `json:"paths"`
}

// HTTPIngressPath splits matching requests over backends.
type HTTPIngressPath struct {
	// Headers a request must carry, with exact values, for this path to match.
	// +optional
	Headers map[string]HeaderMatch `json:"headers,omitempty"`

	// Splits are the backends and their shares, which sum to 100.
	Splits []IngressBackendSplit `json:"splits"`

	// AppendHeaders are added to every request this path serves.
	// +optional
	AppendHeaders map[string]string `json:"appendHeaders,omitempty"`
}

// HeaderMatch matches a header's value exactly.
type HeaderMatch struct {
	Exact string `json:"exact"`
}

// IngressBackendSplit is one backend and its share.
type IngressBackendSplit struct {
	IngressBackend `json:",inline"`

	// Percent of the path's requests this backend gets.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Percent int `json:"percent"`

	// AppendHeaders are added to the requests this backend gets.
	// +optional
	AppendHeaders map[string]string `json:"appendHeaders,omitempty"`
}

// IngressBackend is a revision: its namespace and name.
type IngressBackend struct {
	ServiceNamespace string `json:"serviceNamespace"`
	// ServiceName is the revision's name.
	ServiceName string `json:"serviceName"`
}

// Ingress condition types.
const (
	// IngressConditionReady is True when the data plane serves every rule.
	IngressConditionReady = apis.ConditionReady
	// IngressConditionNetworkConfigured is True when the gateway has programmed the rules.
	IngressConditionNetworkConfigured apis.ConditionType = "NetworkConfigured"
	// IngressConditionLoadBalancerReady is True when the gateway listens for the hosts.
	IngressConditionLoadBalancerReady apis.ConditionType = "LoadBalancerReady"
)

// IngressStatus is the observed state of an Ingress, written by the gateway.
type IngressStatus struct {
	apis.Status `json:",inline"`
}

// IngressList is a list of Ingresses.
//
// +kubebuilder:object:root=true
type IngressList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Ingress `json:"items"`
}
