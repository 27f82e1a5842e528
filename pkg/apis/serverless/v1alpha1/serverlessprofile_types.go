package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/pkg/apis"
)

// ServerlessProfile selects pods to run each alone on a serverless node of its own, sized
// from the menu and metered per second, as an EKS Fargate profile does. A pod matches when it
// matches any of the selectors; when several profiles match, the first by name wins. The spec
// is immutable: to change a profile, create a new one and delete the old.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=sp,categories=gantry;serverless
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=".status.phase"
// +kubebuilder:printcolumn:name="Selectors",type=string,JSONPath=".status.selectors",description="the selectors: namespace and labels, ; between selectors"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type ServerlessProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ServerlessProfileSpec `json:"spec"`

	// +optional
	Status ServerlessProfileStatus `json:"status,omitempty"`
}

// ServerlessProfileSpec says which pods the profile selects.
type ServerlessProfileSpec struct {
	// Selectors choose the pods: a pod matches the profile when it matches any of them.
	// From 1 to 5.
	Selectors []Selector `json:"selectors"`
}

// Selector matches pods by namespace and labels. In the namespace, the label keys and the
// label values, `*` stands for any run of characters and `?` for exactly one, anywhere;
// nothing else is special.
type Selector struct {
	// Namespace is the namespace of the pods, a pattern.
	Namespace string `json:"namespace"`
	// Labels must all be on the pod (key and value patterns); at most 5. None: every pod of
	// the namespace.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
}

// Phase is where a profile is in its life, as EKS's Fargate profile status.
type Phase string

// Phases.
const (
	// PhaseCreating: the profile does not select pods yet.
	PhaseCreating Phase = "Creating"
	// PhaseActive: new pods that match are selected.
	PhaseActive Phase = "Active"
	// PhaseDeleting: the profile selects no more pods and its pods are being stopped.
	PhaseDeleting Phase = "Deleting"
	// PhaseCreateFailed: the profile is invalid (it reached the API without the admission
	// webhook) and never selects; the Ready condition says why.
	PhaseCreateFailed Phase = "CreateFailed"
	// PhaseDeleteFailed: stopping the profile's pods failed; it is retried, and the Ready
	// condition says why.
	PhaseDeleteFailed Phase = "DeleteFailed"
)

// ServerlessProfile condition types.
const (
	// ServerlessProfileConditionReady is True while the profile selects new pods.
	ServerlessProfileConditionReady = apis.ConditionReady
)

// ServerlessProfileStatus is what the profile controller observed.
type ServerlessProfileStatus struct {
	apis.Status `json:",inline"`

	// Phase is Creating, Active, Deleting, CreateFailed or DeleteFailed.
	// +optional
	// +kubebuilder:validation:Enum=Creating;Active;Deleting;CreateFailed;DeleteFailed
	Phase Phase `json:"phase,omitempty"`

	// Selectors sums the spec's selectors up for `kubectl get sp`: "shop app=web*; team-?".
	// +optional
	Selectors string `json:"selectors,omitempty"`
}

// ServerlessProfileList is a list of ServerlessProfiles.
//
// +kubebuilder:object:root=true
type ServerlessProfileList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServerlessProfile `json:"items"`
}
