package v1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/pkg/apis"
)

// Revision is an immutable snapshot of a Configuration's template: code and
// configuration that serve requests, scaled by the autoscaler.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rev,categories=all;knative;serving
// +kubebuilder:printcolumn:name="Config Name",type=string,JSONPath=`.metadata.labels['serving\.knative\.dev/configuration']`
// +kubebuilder:printcolumn:name="Generation",type=string,JSONPath=`.metadata.labels['serving\.knative\.dev/configurationGeneration']`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].reason"
// +kubebuilder:printcolumn:name="Actual Replicas",type=integer,JSONPath=".status.actualReplicas"
// +kubebuilder:printcolumn:name="Desired Replicas",type=integer,JSONPath=".status.desiredReplicas"
type Revision struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the pod template and serving settings; it never changes after
	// creation.
	// The schema is left open: see RevisionTemplateSpec for why.
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	// +optional
	Spec RevisionSpec `json:"spec,omitempty"`

	// +optional
	Status RevisionStatus `json:"status,omitempty"`
}

// RevisionTemplateSpec is the template from which Configurations stamp
// Revisions.
type RevisionTemplateSpec struct {
	// Metadata of the Revisions to create: labels and annotations are copied;
	// a name, if given, names the Revision.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// Spec of the Revisions to create.
	// +optional
	Spec RevisionSpec `json:"spec,omitempty"`
}

// RevisionSpec is a pod spec plus the settings of how a Revision serves.
type RevisionSpec struct {
	corev1.PodSpec `json:",inline"`

	// ContainerConcurrency is the most requests one replica handles at a
	// time; 0 means no limit.
	// +optional
	ContainerConcurrency *int64 `json:"containerConcurrency,omitempty"`

	// TimeoutSeconds is the longest a request may take, in seconds.
	// +optional
	TimeoutSeconds *int64 `json:"timeoutSeconds,omitempty"`

	// ResponseStartTimeoutSeconds is the longest the first byte of a response
	// may take; unset means TimeoutSeconds.
	// +optional
	ResponseStartTimeoutSeconds *int64 `json:"responseStartTimeoutSeconds,omitempty"`

	// IdleTimeoutSeconds is the longest a request may go without a byte of
	// response; 0 turns it off.
	// +optional
	IdleTimeoutSeconds *int64 `json:"idleTimeoutSeconds,omitempty"`
}

// Revision condition types.
const (
	// RevisionConditionReady is True when the Revision can serve.
	RevisionConditionReady = apis.ConditionReady
	// RevisionConditionResourcesAvailable is True when the Revision's
	// Deployment and other children exist and are provisioned.
	RevisionConditionResourcesAvailable apis.ConditionType = "ResourcesAvailable"
	// RevisionConditionContainerHealthy is True when the user containers
	// started and passed their readiness checks.
	RevisionConditionContainerHealthy apis.ConditionType = "ContainerHealthy"
	// RevisionConditionActive is True when the Revision has pods for its
	// traffic, False when it is scaled to zero.
	RevisionConditionActive apis.ConditionType = "Active"
)

// RevisionStatus is the observed state of a Revision.
type RevisionStatus struct {
	apis.Status `json:",inline"`

	// LogURL links to the Revision's logs.
	// +optional
	LogURL string `json:"logUrl,omitempty"`

	// ContainerStatuses are the user containers with the image digests they
	// were resolved to.
	// +optional
	ContainerStatuses []ContainerStatus `json:"containerStatuses,omitempty"`

	// InitContainerStatuses are the init containers with their digests.
	// +optional
	InitContainerStatuses []ContainerStatus `json:"initContainerStatuses,omitempty"`

	// ActualReplicas is the number of ready pods.
	// +optional
	ActualReplicas *int32 `json:"actualReplicas,omitempty"`

	// DesiredReplicas is the number of pods the autoscaler asked for.
	// +optional
	DesiredReplicas *int32 `json:"desiredReplicas,omitempty"`
}

// ContainerStatus records the digest a container's image was resolved to.
type ContainerStatus struct {
	Name        string `json:"name,omitempty"`
	ImageDigest string `json:"imageDigest,omitempty"`
}

// RevisionList is a list of Revisions.
//
// +kubebuilder:object:root=true
type RevisionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Revision `json:"items"`
}
