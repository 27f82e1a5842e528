package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/pkg/apis"
)

// PodAutoscaler scales one revision's Deployment. The revision controller writes its spec (and
// the revision's autoscaling annotations, copied); the autoscaler of the PodAutoscaler's class
// writes its status.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=kpa;pa,categories=knative-internal;autoscaling
// +kubebuilder:printcolumn:name="DesiredScale",type=integer,JSONPath=".status.desiredScale"
// +kubebuilder:printcolumn:name="ActualScale",type=integer,JSONPath=".status.actualScale"
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=".status.mode"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
type PodAutoscaler struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec PodAutoscalerSpec `json:"spec,omitempty"`

	// +optional
	Status PodAutoscalerStatus `json:"status,omitempty"`
}

// ReachabilityType says whether any route sends traffic to the revision.
type ReachabilityType string

// Reachabilities.
const (
	// ReachabilityUnknown: not known yet; treated as reachable.
	ReachabilityUnknown ReachabilityType = ""
	// ReachabilityReachable: a route sends traffic to the revision.
	ReachabilityReachable ReachabilityType = "Reachable"
	// ReachabilityUnreachable: no route does; the revision goes to zero regardless of its
	// min-scale.
	ReachabilityUnreachable ReachabilityType = "Unreachable"
)

// ProtocolType is the protocol the revision's pods speak.
type ProtocolType string

// Protocols.
const (
	ProtocolHTTP1 ProtocolType = "http1"
	ProtocolH2C   ProtocolType = "h2c"
)

// PodAutoscalerSpec is what the revision controller asks of the autoscaler.
type PodAutoscalerSpec struct {
	// ContainerConcurrency is the revision's hard limit of requests per pod; 0 is no limit.
	// +optional
	ContainerConcurrency int64 `json:"containerConcurrency,omitempty"`

	// ScaleTargetRef is the Deployment whose scale the autoscaler sets.
	ScaleTargetRef corev1.ObjectReference `json:"scaleTargetRef"`

	// Reachability says whether a route sends traffic to the revision.
	// +optional
	// +kubebuilder:validation:Enum="";Reachable;Unreachable
	Reachability ReachabilityType `json:"reachability,omitempty"`

	// ProtocolType is the protocol of the revision's pods.
	// +optional
	// +kubebuilder:validation:Enum=http1;h2c
	ProtocolType ProtocolType `json:"protocolType,omitempty"`
}

// Mode says who takes a revision's requests first: the activator (Proxy), which holds them
// until a pod has room, or the revision's pods (Serve). It is Knative's ServerlessService mode.
type Mode string

// Modes.
const (
	// ModeProxy: requests go through the activator's queue; it also reports their
	// concurrency to the autoscaler.
	ModeProxy Mode = "Proxy"
	// ModeServe: requests go straight to the revision's pods.
	ModeServe Mode = "Serve"
)

// PodAutoscaler condition types.
const (
	// PodAutoscalerConditionReady is True once the scale target has been initialized.
	PodAutoscalerConditionReady = apis.ConditionReady
	// PodAutoscalerConditionActive is True while the revision has pods for its traffic,
	// False (NoTraffic) at zero, Unknown while it goes to or comes from zero.
	PodAutoscalerConditionActive apis.ConditionType = "Active"
	// PodAutoscalerConditionScaleTargetInitialized is True once the revision has once
	// reached its initial scale.
	PodAutoscalerConditionScaleTargetInitialized apis.ConditionType = "ScaleTargetInitialized"
)

// PodAutoscalerStatus is what the autoscaler reports.
type PodAutoscalerStatus struct {
	apis.Status `json:",inline"`

	// DesiredScale is the number of pods the autoscaler wants.
	// +optional
	DesiredScale *int32 `json:"desiredScale,omitempty"`

	// ActualScale is the number of ready pods.
	// +optional
	ActualScale *int32 `json:"actualScale,omitempty"`

	// Mode says whether the activator takes the revision's requests first.
	// +optional
	Mode Mode `json:"mode,omitempty"`

	// ModeSince is when Mode last changed: a revision goes to zero only a grace period
	// after the activator took its route over.
	// +optional
	ModeSince *metav1.Time `json:"modeSince,omitempty"`

	// MetricsServiceName names where the revision's metrics are scraped; Gantry scrapes each
	// pod's queue-proxy directly and leaves it empty.
	// +optional
	MetricsServiceName string `json:"metricsServiceName,omitempty"`
}

// PodAutoscalerList is a list of PodAutoscalers.
//
// +kubebuilder:object:root=true
type PodAutoscalerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PodAutoscaler `json:"items"`
}
