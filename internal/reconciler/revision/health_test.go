package revision

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
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
