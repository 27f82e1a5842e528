package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/pkg/apis"
)

// Route maps a network endpoint to Revisions, splitting traffic by percent
// and giving tagged targets their own URLs.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rt,categories=all;knative;serving
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=".status.url"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
type Route struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec RouteSpec `json:"spec,omitempty"`

	// +optional
	Status RouteStatus `json:"status,omitempty"`
}

// TrafficTarget sends a share of traffic to a Revision, or to whichever
// Revision of a Configuration is the latest ready one.
type TrafficTarget struct {
	// Tag gives the target its own URL, <tag>-<route>.<namespace>.<domain>.
	// +optional
	Tag string `json:"tag,omitempty"`

	// RevisionName pins the target to one Revision.
	// +optional
	RevisionName string `json:"revisionName,omitempty"`

	// ConfigurationName follows the latest ready Revision of a Configuration.
	// In a Service it is implied and may not be set.
	// +optional
	ConfigurationName string `json:"configurationName,omitempty"`

	// LatestRevision says the target follows the latest ready Revision; it
	// defaults to true when RevisionName is empty.
	// +optional
	LatestRevision *bool `json:"latestRevision,omitempty"`

	// Percent of traffic sent to the target; the percents of a spec sum to 100.
	// +optional
	Percent *int64 `json:"percent,omitempty"`

	// URL is where a tagged target is reached; set only in status.
	// +optional
	URL *apis.URL `json:"url,omitempty"`
}

// RouteSpec is the desired state of a Route.
type RouteSpec struct {
	// Traffic lists the targets and their shares.
	// +optional
	Traffic []TrafficTarget `json:"traffic,omitempty"`
}

// Route condition types.
const (
	// RouteConditionReady is True when the Route serves all its targets.
	RouteConditionReady = apis.ConditionReady
	// RouteConditionAllTrafficAssigned is True when every target resolved
	// to a ready Revision.
	RouteConditionAllTrafficAssigned apis.ConditionType = "AllTrafficAssigned"
	// RouteConditionIngressReady is True when the gateway serves the Route.
	RouteConditionIngressReady apis.ConditionType = "IngressReady"
	// RouteConditionCertificateProvisioned is True when TLS for the Route is
	// in place (or not wanted).
	RouteConditionCertificateProvisioned apis.ConditionType = "CertificateProvisioned"
)

// RouteStatusFields are the status fields a Service shares with its Route.
type RouteStatusFields struct {
	// URL is where the Route is reached.
	// +optional
	URL *apis.URL `json:"url,omitempty"`

	// Address is the Route's in-cluster address.
	// +optional
	Address *apis.Addressable `json:"address,omitempty"`

	// Traffic is the resolved split: every target named by its Revision.
	// +optional
	Traffic []TrafficTarget `json:"traffic,omitempty"`
}

// RouteStatus is the observed state of a Route.
type RouteStatus struct {
	apis.Status `json:",inline"`

	RouteStatusFields `json:",inline"`
}

// RouteList is a list of Routes.
//
// +kubebuilder:object:root=true
type RouteList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Route `json:"items"`
}
