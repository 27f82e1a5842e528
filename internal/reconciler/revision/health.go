package revision

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/queue/contract"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// problem is what a Revision's pods say is wrong with it.
type problem struct {
	// resources is true for a problem of placement or image (ResourcesAvailable), false for
	// a container that fails (ContainerHealthy).
	resources bool
	reason    string
	message   string
	exitCode  int32
}

// imageReasons are the waiting reasons of a container whose image cannot be had.
var imageReasons = map[string]bool{"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true}

// podProblem returns the first problem the pods report, in a stable order: scheduling, then
// images, then crashing user containers. The queue-proxy's own state is not the user's.
func podProblem(pods []corev1.Pod) *problem {
	for _, p := range pods {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return &problem{resources: true, reason: c.Reason, message: c.Message}
			}
		}
	}
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && imageReasons[w.Reason] && cs.Name != contract.ContainerName {
				return &problem{resources: true, reason: w.Reason, message: w.Message}
			}
		}
	}
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == contract.ContainerName {
				continue
			}
			t := cs.State.Terminated
			if t == nil {
				t = cs.LastTerminationState.Terminated
			}
			if t != nil && t.ExitCode != 0 {
				msg := t.Message
				if msg == "" {
					msg = t.Reason
				}
				if w := cs.State.Waiting; w != nil && w.Reason != "" {
					msg = fmt.Sprintf("%s; %s", msg, w.Reason)
				}
				return &problem{reason: t.Reason, message: msg, exitCode: t.ExitCode}
			}
		}
	}
	return nil
}

// wantsPods reports whether the Deployment is meant to run pods and has none ready: only then
// do the pods say why the revision does not serve, as Knative looks at them only while
// "no active pods in the deployment although we want some". A revision with ready pods is
// not judged by one pod that restarted.
func wantsPods(d *appsv1.Deployment) bool {
	return ptr.Deref(d.Spec.Replicas, 1) > 0 && d.Status.ReadyReplicas == 0
}

// rolloutFailed reports whether the Deployment says its rollout failed: a ReplicaSet that
// could not create pods, or a rollout past its progress deadline.
func rolloutFailed(ds *appsv1.DeploymentStatus) bool {
	for _, c := range ds.Conditions {
		if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue ||
			c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse {
			return true
		}
	}
	return false
}

// reportHealth sets the Revision's ResourcesAvailable and ContainerHealthy conditions from its
// Deployment and, while the Deployment wants pods and has none ready, from those pods.
// initialScale is the scale the revision was created at.
//
// Health is established once and then kept, as in Knative: ResourcesAvailable and
// ContainerHealthy, once True, stay True while the revision scales to zero and back, so a
// revision at zero stays Ready. Only a failure takes them back: a rollout the Deployment gave
// up on, a pod that cannot be placed or pulled, a container that exits. Until health is
// established the Deployment's own conditions decide ResourcesAvailable. Whether the revision
// has pods for its traffic (Active) is the autoscaler's to say: propagateAutoscalerStatus.
func reportHealth(rev *servingv1.Revision, deploy *appsv1.Deployment, pods []corev1.Pod, initialScale int32) {
	rs := &rev.Status
	desired := ptr.Deref(deploy.Spec.Replicas, 1)
	// A Deployment scaling from zero is not Available until its pods are: that is the
	// autoscaler's business (Active), not a lack of resources.
	if !rs.GetCondition(servingv1.RevisionConditionResourcesAvailable).IsTrue() || rolloutFailed(&deploy.Status) {
		rs.PropagateDeploymentStatus(&deploy.Status)
	}
	switch p := podProblem(pods); {
	case p != nil && p.resources:
		rs.MarkResourcesAvailableFalse(p.reason, p.message)
	case p != nil:
		rs.MarkContainerExited(p.exitCode, p.message)
	case deploy.Status.ReadyReplicas > 0:
		rs.MarkContainerHealthyTrue()
	case desired == 0 && initialScale == 0 && rs.GetCondition(servingv1.RevisionConditionContainerHealthy).IsUnknown():
		// Created at zero (initial-scale 0): no pod is required, so none has failed. Knative's
		// autoscaler counts such a scale target as reached with no pods ready.
		rs.MarkContainerHealthyTrue()
	}
}

// activatingMessage says why a revision that has served is not Active, when the autoscaler
// does not.
const activatingMessage = "Waiting for a pod to become ready."

// propagateAutoscalerStatus reports the autoscaler's view of the revision, as Knative's
// RevisionStatus.PropagateAutoscalerStatus does: the replica counts the PodAutoscaler has
// (none until it says), and Active from its Active condition. True and False (NoTraffic at
// zero) are copied with their reason; Unknown, or no word yet, is Deploying until the revision
// has been healthy and Activating after, with the autoscaler's message when it gives one.
//
// The revision has been healthy when the autoscaler saw it reach its initial scale, or when
// its health is established (reportHealth, which runs first, keeps ResourcesAvailable True
// through a container's failure, so a crash while scaling from zero is still Activating).
func propagateAutoscalerStatus(rs *servingv1.RevisionStatus, ps *pav1alpha1.PodAutoscalerStatus) {
	rs.ActualReplicas, rs.DesiredReplicas = nonNegative(ps.ActualScale), nonNegative(ps.DesiredScale)
	c := ps.GetCondition(pav1alpha1.PodAutoscalerConditionActive)
	switch {
	case c.IsTrue():
		rs.MarkActiveTrue()
	case c.IsFalse():
		rs.MarkActiveFalse(c.Reason, c.Message)
	case ps.ScaleTargetInitialized() ||
		rs.GetCondition(servingv1.RevisionConditionContainerHealthy).IsTrue() ||
		rs.GetCondition(servingv1.RevisionConditionResourcesAvailable).IsTrue():
		msg := activatingMessage
		if c != nil && c.Message != "" {
			msg = c.Message
		}
		rs.MarkActiveUnknown(servingv1.ReasonActivating, msg)
	default:
		msg := ""
		if c != nil {
			msg = c.Message
		}
		rs.MarkActiveUnknown(servingv1.ReasonDeploying, msg)
	}
}

// nonNegative is a copy of n, or nil when n is not set or below zero.
func nonNegative(n *int32) *int32 {
	if n == nil || *n < 0 {
		return nil
	}
	return ptr.To(*n)
}
