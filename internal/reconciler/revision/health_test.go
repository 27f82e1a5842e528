package revision

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/pkg/apis"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
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

func TestPropagateAutoscalerStatus(t *testing.T) {
	// revisionStatus is a revision whose ContainerHealthy and ResourcesAvailable are as given.
	revisionStatus := func(healthy, available corev1.ConditionStatus) *servingv1.RevisionStatus {
		rs := &servingv1.RevisionStatus{}
		rs.InitializeConditions()
		switch healthy {
		case corev1.ConditionTrue:
			rs.MarkContainerHealthyTrue()
		case corev1.ConditionFalse:
			rs.MarkContainerExited(5, "Error")
		}
		switch available {
		case corev1.ConditionTrue:
			rs.MarkResourcesAvailableTrue()
		case corev1.ConditionFalse:
			rs.MarkResourcesAvailableFalse("ImagePullBackOff", "")
		}
		return rs
	}
	// paStatus is an autoscaler's report: desired and actual scale (-1: not set) and Active
	// as mark leaves it (nil: no conditions at all).
	paStatus := func(desired, actual int32, mark func(*pav1alpha1.PodAutoscalerStatus)) *pav1alpha1.PodAutoscalerStatus {
		ps := &pav1alpha1.PodAutoscalerStatus{}
		if desired >= 0 {
			ps.DesiredScale = ptr.To(desired)
		}
		if actual >= 0 {
			ps.ActualScale = ptr.To(actual)
		}
		if mark != nil {
			ps.InitializeConditions()
			mark(ps)
		}
		return ps
	}
	activeAt := func(ps *pav1alpha1.PodAutoscalerStatus) { ps.MarkScaleTargetInitialized(); ps.MarkActive() }
	noTraffic := func(ps *pav1alpha1.PodAutoscalerStatus) {
		ps.MarkScaleTargetInitialized()
		ps.MarkInactive("NoTraffic", "The target is not receiving traffic.")
	}
	queued := func(ps *pav1alpha1.PodAutoscalerStatus) {
		ps.MarkActivating("Queued", "Requests to the target are being buffered as resources are provisioned.")
	}
	initializedQueued := func(ps *pav1alpha1.PodAutoscalerStatus) { ps.MarkScaleTargetInitialized(); queued(ps) }
	tests := []struct {
		name                 string
		rs                   *servingv1.RevisionStatus
		ps                   *pav1alpha1.PodAutoscalerStatus
		want                 apis.Condition
		wantActual, wantWant *int32
	}{{
		name: "no status yet, a new revision: deploying",
		rs:   revisionStatus(corev1.ConditionUnknown, corev1.ConditionUnknown),
		ps:   paStatus(-1, -1, nil),
		want: apis.Condition{Type: servingv1.RevisionConditionActive, Status: corev1.ConditionUnknown, Reason: "Deploying"},
	}, {
		name: "no status yet, a revision that has served: activating",
		rs:   revisionStatus(corev1.ConditionTrue, corev1.ConditionTrue),
		ps:   paStatus(-1, -1, nil),
		want: apis.Condition{Type: servingv1.RevisionConditionActive, Status: corev1.ConditionUnknown, Reason: "Activating", Message: "Waiting for a pod to become ready."},
	}, {
		name:       "active",
		rs:         revisionStatus(corev1.ConditionTrue, corev1.ConditionTrue),
		ps:         paStatus(3, 2, activeAt),
		want:       apis.Condition{Type: servingv1.RevisionConditionActive, Status: corev1.ConditionTrue},
		wantActual: ptr.To[int32](2), wantWant: ptr.To[int32](3),
	}, {
		name:       "at zero: inactive with the autoscaler's reason",
		rs:         revisionStatus(corev1.ConditionTrue, corev1.ConditionTrue),
		ps:         paStatus(0, 0, noTraffic),
		want:       apis.Condition{Type: servingv1.RevisionConditionActive, Status: corev1.ConditionFalse, Reason: "NoTraffic", Message: "The target is not receiving traffic."},
		wantActual: ptr.To[int32](0), wantWant: ptr.To[int32](0),
	}, {
		name: "first rollout, pods queued: deploying, with the autoscaler's message",
		rs:   revisionStatus(corev1.ConditionUnknown, corev1.ConditionUnknown),
		ps:   paStatus(1, 0, queued),
		want: apis.Condition{Type: servingv1.RevisionConditionActive, Status: corev1.ConditionUnknown, Reason: "Deploying",
			Message: "Requests to the target are being buffered as resources are provisioned."},
		wantActual: ptr.To[int32](0), wantWant: ptr.To[int32](1),
	}, {
		name: "back from zero: activating",
		rs:   revisionStatus(corev1.ConditionTrue, corev1.ConditionTrue),
		ps:   paStatus(1, 0, initializedQueued),
		want: apis.Condition{Type: servingv1.RevisionConditionActive, Status: corev1.ConditionUnknown, Reason: "Activating",
			Message: "Requests to the target are being buffered as resources are provisioned."},
		wantActual: ptr.To[int32](0), wantWant: ptr.To[int32](1),
	}, {
		name: "a container that crashed coming back from zero: still activating",
		rs:   revisionStatus(corev1.ConditionFalse, corev1.ConditionTrue),
		ps:   paStatus(1, 0, queued),
		want: apis.Condition{Type: servingv1.RevisionConditionActive, Status: corev1.ConditionUnknown, Reason: "Activating",
			Message: "Requests to the target are being buffered as resources are provisioned."},
		wantActual: ptr.To[int32](0), wantWant: ptr.To[int32](1),
	}, {
		name: "the autoscaler saw its initial scale reached: activating whatever the revision says",
		rs:   revisionStatus(corev1.ConditionFalse, corev1.ConditionFalse),
		ps:   paStatus(1, 0, initializedQueued),
		want: apis.Condition{Type: servingv1.RevisionConditionActive, Status: corev1.ConditionUnknown, Reason: "Activating",
			Message: "Requests to the target are being buffered as resources are provisioned."},
		wantActual: ptr.To[int32](0), wantWant: ptr.To[int32](1),
	}, {
		name:       "a negative scale is not copied",
		rs:         revisionStatus(corev1.ConditionTrue, corev1.ConditionTrue),
		ps:         &pav1alpha1.PodAutoscalerStatus{DesiredScale: ptr.To[int32](-1), ActualScale: ptr.To[int32](1)},
		want:       apis.Condition{Type: servingv1.RevisionConditionActive, Status: corev1.ConditionUnknown, Reason: "Activating", Message: "Waiting for a pod to become ready."},
		wantActual: ptr.To[int32](1),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := tt.rs
			rs.ActualReplicas, rs.DesiredReplicas = ptr.To[int32](7), ptr.To[int32](7) // stale: replaced
			before := tt.ps.DeepCopy()
			propagateAutoscalerStatus(rs, tt.ps)
			if diff := cmp.Diff(&tt.want, rs.GetCondition(servingv1.RevisionConditionActive), ignoreTimeAndSeverity); diff != "" {
				t.Errorf("Active (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]*int32{tt.wantActual, tt.wantWant}, []*int32{rs.ActualReplicas, rs.DesiredReplicas}); diff != "" {
				t.Errorf("actual, desired replicas (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tt.ps); diff != "" {
				t.Errorf("the PodAutoscaler's status changed (-before +after):\n%s", diff)
			}
			if tt.wantActual != nil && tt.ps.ActualScale == rs.ActualReplicas {
				t.Error("actualReplicas aliases the PodAutoscaler's actualScale; want a copy")
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
