package v1alpha1

import (
	"context"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gantry-run/gantry/pkg/apis"
)

var profileCondSet = apis.NewLivingConditionSet()

// GetConditionSet returns the conditions a ServerlessProfile is judged by.
func (*ServerlessProfile) GetConditionSet() apis.ConditionSet { return profileCondSet }

// GetGroupVersionKind returns serverless.gantry.dev/v1alpha1 ServerlessProfile.
func (*ServerlessProfile) GetGroupVersionKind() schema.GroupVersionKind {
	return SchemeGroupVersion.WithKind("ServerlessProfile")
}

// Selects reports whether the profile selects new pods: it is not being deleted, and it is
// valid (not CreateFailed, and its spec passes validation even before the controller has
// looked at it). It does not wait for the phase Active: the controller marks a profile
// Active once it has read it from the cache the admission webhook reads, so by the time a
// client sees Active the webhook holds the profile, though maybe not yet its new status.
func (p *ServerlessProfile) Selects() bool {
	return p.DeletionTimestamp == nil && p.Status.Phase != PhaseCreateFailed &&
		p.Spec.Validate(context.Background()) == nil
}

func (s *ServerlessProfileStatus) manage() apis.ConditionManager {
	return profileCondSet.Manage(&s.Status)
}

// InitializeConditions sets the phase to Creating and Ready to Unknown where they are unset.
func (s *ServerlessProfileStatus) InitializeConditions() {
	if s.Phase == "" {
		s.Phase = PhaseCreating
	}
	s.manage().InitializeConditions()
}

// GetCondition returns the condition of type t, or nil.
func (s *ServerlessProfileStatus) GetCondition(t apis.ConditionType) *apis.Condition {
	return s.manage().GetCondition(t)
}

// MarkActive records that the profile selects new pods.
func (s *ServerlessProfileStatus) MarkActive() {
	s.Phase = PhaseActive
	s.manage().MarkTrue(ServerlessProfileConditionReady)
}

// MarkCreateFailed records that the profile is invalid and never selects.
func (s *ServerlessProfileStatus) MarkCreateFailed(message string) {
	s.Phase = PhaseCreateFailed
	s.manage().MarkFalse(ServerlessProfileConditionReady, "Invalid", "%s", message)
}

// MarkDeleting records that the profile selects no more pods and stops its own.
func (s *ServerlessProfileStatus) MarkDeleting(message string) {
	s.Phase = PhaseDeleting
	s.manage().MarkFalse(ServerlessProfileConditionReady, "Deleting", "%s", message)
}

// MarkDeleteFailed records that stopping the profile's pods failed.
func (s *ServerlessProfileStatus) MarkDeleteFailed(message string) {
	s.Phase = PhaseDeleteFailed
	s.manage().MarkFalse(ServerlessProfileConditionReady, "DeleteFailed", "%s", message)
}

// Summary renders the selectors on one line: "shop app=web*; team-?".
func (s *ServerlessProfileSpec) Summary() string {
	parts := make([]string, 0, len(s.Selectors))
	for _, sel := range s.Selectors {
		kv := make([]string, 0, len(sel.Labels))
		for k, v := range sel.Labels {
			kv = append(kv, k+"="+v)
		}
		slices.Sort(kv)
		parts = append(parts, strings.TrimSpace(sel.Namespace+" "+strings.Join(kv, ",")))
	}
	return strings.Join(parts, "; ")
}
