package revision

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func pod(conds []corev1.PodCondition, statuses ...corev1.ContainerStatus) corev1.Pod {
	return corev1.Pod{Status: corev1.PodStatus{Conditions: conds, ContainerStatuses: statuses}}
}

func TestPodProblem(t *testing.T) {
	unschedulable := []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/0 nodes are available"}}
	pullBackOff := corev1.ContainerStatus{Name: "user-container", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "manifest unknown"}}}
	crashLoop := corev1.ContainerStatus{
		Name:                 "user-container",
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 5, Reason: "Error"}},
	}
	queueCrash := corev1.ContainerStatus{Name: "queue-proxy", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1}}}
	running := corev1.ContainerStatus{Name: "user-container", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	tests := []struct {
		name string
		pods []corev1.Pod
		want *problem
	}{
		{"healthy", []corev1.Pod{pod(nil, running)}, nil},
		{"unschedulable", []corev1.Pod{pod(unschedulable)}, &problem{resources: true, reason: "Unschedulable", message: "0/0 nodes are available"}},
		{"image pull", []corev1.Pod{pod(nil, pullBackOff)}, &problem{resources: true, reason: "ImagePullBackOff", message: "manifest unknown"}},
		{"crash loop", []corev1.Pod{pod(nil, crashLoop)}, &problem{reason: "Error", message: "Error; CrashLoopBackOff", exitCode: 5}},
		{"the queue-proxy is not the user's problem", []corev1.Pod{pod(nil, running, queueCrash)}, nil},
		{"scheduling outranks a crash elsewhere", []corev1.Pod{pod(nil, crashLoop), pod(unschedulable)}, &problem{resources: true, reason: "Unschedulable", message: "0/0 nodes are available"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, podProblem(tt.pods), cmp.AllowUnexported(problem{})); diff != "" {
				t.Errorf("podProblem (-want +got):\n%s", diff)
			}
		})
	}
}

func TestActiveFromDeployment(t *testing.T) {
	scaled := func(replicas, ready int32) *appsv1.Deployment {
		return &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas)}, Status: appsv1.DeploymentStatus{ReadyReplicas: ready}}
	}
	tests := []struct {
		name    string
		deploy  *appsv1.Deployment
		healthy bool
		want    activity
	}{
		{"ready pods", scaled(2, 1), true, activity{status: corev1.ConditionTrue}},
		{"scaled to zero", scaled(0, 0), true, activity{corev1.ConditionFalse, "NoTraffic", "The target is not receiving traffic."}},
		{"scaled to zero, its last pod still going", scaled(0, 1), true, activity{corev1.ConditionFalse, "NoTraffic", "The target is not receiving traffic."}},
		{"created at zero", scaled(0, 0), false, activity{corev1.ConditionFalse, "NoTraffic", "The target is not receiving traffic."}},
		{"first rollout", scaled(1, 0), false, activity{corev1.ConditionUnknown, "Deploying", ""}},
		{"back from zero", scaled(1, 0), true, activity{corev1.ConditionUnknown, "Activating", "Waiting for a pod to become ready."}},
		{"no replicas set: the API's default of one", &appsv1.Deployment{}, false, activity{corev1.ConditionUnknown, "Deploying", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, activeFromDeployment(tt.deploy, tt.healthy), cmp.AllowUnexported(activity{})); diff != "" {
				t.Errorf("activeFromDeployment (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRolloutFailed(t *testing.T) {
	for _, tt := range []struct {
		name  string
		conds []appsv1.DeploymentCondition
		want  bool
	}{
		{"no conditions", nil, false},
		{"progressing", []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue}}, false},
		{"unavailable while scaling", []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionFalse}}, false},
		{"past its progress deadline", []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse}}, true},
		{"a replica failure", []appsv1.DeploymentCondition{{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue}}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := rolloutFailed(&appsv1.DeploymentStatus{Conditions: tt.conds}); got != tt.want {
				t.Errorf("rolloutFailed = %v, want %v", got, tt.want)
			}
		})
	}
}
