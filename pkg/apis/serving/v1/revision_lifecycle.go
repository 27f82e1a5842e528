package v1

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/gantry-run/gantry/pkg/apis"
)

// Reasons controllers put on Revision conditions.
const (
	ReasonContainerMissing = "ContainerMissing"
	ReasonResolvingDigests = "ResolvingDigests"
	ReasonDeploying        = "Deploying"
	ReasonProgressDeadline = "ProgressDeadlineExceeded"
	ReasonExitCode         = "ExitCode"
	ReasonNoTraffic        = "NoTraffic"
	ReasonActivating       = "Activating"
)

var revisionCondSet = apis.NewLivingConditionSet(
	RevisionConditionResourcesAvailable,
	RevisionConditionContainerHealthy,
)

// GetConditionSet returns the conditions a Revision is judged by. Active is
// informational: a Revision scaled to zero is still Ready.
func (*Revision) GetConditionSet() apis.ConditionSet { return revisionCondSet }

// GetGroupVersionKind returns serving.knative.dev/v1 Revision.
func (*Revision) GetGroupVersionKind() schema.GroupVersionKind {
	return SchemeGroupVersion.WithKind("Revision")
}

// IsReady reports whether the status is for the current generation and Ready.
func (r *Revision) IsReady() bool {
	return r.Generation == r.Status.ObservedGeneration && r.Status.IsReady()
}

func (rs *RevisionStatus) manage() apis.ConditionManager { return revisionCondSet.Manage(&rs.Status) }

// InitializeConditions sets every unset condition to Unknown.
func (rs *RevisionStatus) InitializeConditions() { rs.manage().InitializeConditions() }

// GetCondition returns the condition of type t, or nil.
func (rs *RevisionStatus) GetCondition(t apis.ConditionType) *apis.Condition {
	return rs.manage().GetCondition(t)
}

// IsReady reports whether Ready is True.
func (rs *RevisionStatus) IsReady() bool { return rs.manage().IsHappy() }

// IsFailed reports whether Ready is False.
func (rs *RevisionStatus) IsFailed() bool { return rs.GetCondition(RevisionConditionReady).IsFalse() }

// MarkResourcesAvailableTrue records that the Revision's children are in place.
func (rs *RevisionStatus) MarkResourcesAvailableTrue() {
	rs.manage().MarkTrue(RevisionConditionResourcesAvailable)
}

// MarkResourcesAvailableFalse records why the Revision's children failed.
func (rs *RevisionStatus) MarkResourcesAvailableFalse(reason, message string) {
	rs.manage().MarkFalse(RevisionConditionResourcesAvailable, reason, "%s", message)
}

// MarkResourcesAvailableUnknown records that the children are being set up.
func (rs *RevisionStatus) MarkResourcesAvailableUnknown(reason, message string) {
	rs.manage().MarkUnknown(RevisionConditionResourcesAvailable, reason, "%s", message)
}

// MarkContainerHealthyTrue records that the containers passed their checks.
func (rs *RevisionStatus) MarkContainerHealthyTrue() {
	rs.manage().MarkTrue(RevisionConditionContainerHealthy)
}

// MarkContainerHealthyFalse records why a container failed.
func (rs *RevisionStatus) MarkContainerHealthyFalse(reason, message string) {
	rs.manage().MarkFalse(RevisionConditionContainerHealthy, reason, "%s", message)
}

// MarkContainerHealthyUnknown records that container health is not known yet.
func (rs *RevisionStatus) MarkContainerHealthyUnknown(reason, message string) {
	rs.manage().MarkUnknown(RevisionConditionContainerHealthy, reason, "%s", message)
}

// MarkActiveTrue records that the Revision has pods for its traffic.
func (rs *RevisionStatus) MarkActiveTrue() { rs.manage().MarkTrue(RevisionConditionActive) }

// MarkActiveFalse records that the Revision is scaled to zero.
func (rs *RevisionStatus) MarkActiveFalse(reason, message string) {
	rs.manage().MarkFalse(RevisionConditionActive, reason, "%s", message)
}

// MarkActiveUnknown records that the Revision is scaling up or down.
func (rs *RevisionStatus) MarkActiveUnknown(reason, message string) {
	rs.manage().MarkUnknown(RevisionConditionActive, reason, "%s", message)
}

// PropagateDeploymentStatus mirrors the Deployment's conditions: a failed
// rollout (Progressing False, e.g. ProgressDeadlineExceeded) or a
// ReplicaFailure makes ResourcesAvailable False; an Available Deployment
// makes it True; anything else leaves it Unknown while deploying.
func (rs *RevisionStatus) PropagateDeploymentStatus(ds *appsv1.DeploymentStatus) {
	var available, progressing, replicaFailure *appsv1.DeploymentCondition
	for i := range ds.Conditions {
		c := &ds.Conditions[i]
		switch c.Type {
		case appsv1.DeploymentAvailable:
			available = c
		case appsv1.DeploymentProgressing:
			progressing = c
		case appsv1.DeploymentReplicaFailure:
			replicaFailure = c
		}
	}
	switch {
	case replicaFailure != nil && replicaFailure.Status == corev1.ConditionTrue:
		rs.MarkResourcesAvailableFalse(replicaFailure.Reason, replicaFailure.Message)
	case progressing != nil && progressing.Status == corev1.ConditionFalse:
		rs.MarkResourcesAvailableFalse(ReasonProgressDeadline, progressing.Message)
	case available != nil && available.Status == corev1.ConditionTrue:
		rs.MarkResourcesAvailableTrue()
	default:
		rs.MarkResourcesAvailableUnknown(ReasonDeploying, "")
	}
}

// MarkContainerExited records that a user container terminated with code.
func (rs *RevisionStatus) MarkContainerExited(code int32, message string) {
	rs.MarkContainerHealthyFalse(ReasonExitCode, fmt.Sprintf("Container failed with: %s (exit code %d)", message, code))
}

// MarkContainerMissing records that an image could not be resolved.
func (rs *RevisionStatus) MarkContainerMissing(message string) {
	rs.MarkContainerHealthyFalse(ReasonContainerMissing, message)
}
