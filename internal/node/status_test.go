package node

import (
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/gantry-run/gantry/internal/sandbox"
)

func TestPodPhase(t *testing.T) {
	always, onFailure, never := corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever
	run := corev1.ContainerStatus{State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	creating := corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}
	exit := func(code int32) corev1.ContainerStatus {
		return corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}
	}
	crashLoop := func(code int32) corev1.ContainerStatus {
		return corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}
	}
	for _, tt := range []struct {
		name     string
		policy   corev1.RestartPolicy
		initDone bool
		statuses []corev1.ContainerStatus
		want     corev1.PodPhase
	}{
		{"init containers not done", always, false, []corev1.ContainerStatus{run}, corev1.PodPending},
		{"creating", always, true, []corev1.ContainerStatus{creating}, corev1.PodPending},
		{"one running, one creating", always, true, []corev1.ContainerStatus{run, creating}, corev1.PodPending},
		{"running", always, true, []corev1.ContainerStatus{run, run}, corev1.PodRunning},
		{"one running, one exited", never, true, []corev1.ContainerStatus{run, exit(1)}, corev1.PodRunning},
		{"crash loop under Always", always, true, []corev1.ContainerStatus{crashLoop(1)}, corev1.PodRunning},
		{"all exited under Always restart", always, true, []corev1.ContainerStatus{exit(0)}, corev1.PodRunning},
		{"all succeeded under OnFailure", onFailure, true, []corev1.ContainerStatus{exit(0), exit(0)}, corev1.PodSucceeded},
		{"one failed under OnFailure restarts", onFailure, true, []corev1.ContainerStatus{exit(0), crashLoop(2)}, corev1.PodRunning},
		{"all succeeded under Never", never, true, []corev1.ContainerStatus{exit(0)}, corev1.PodSucceeded},
		{"one failed under Never", never, true, []corev1.ContainerStatus{exit(0), exit(2)}, corev1.PodFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := podPhase(tt.policy, tt.initDone, tt.statuses); got != tt.want {
				t.Errorf("phase %s, want %s", got, tt.want)
			}
		})
	}
}

func condition(s corev1.PodStatus, t corev1.PodConditionType) corev1.PodCondition {
	for _, c := range s.Conditions {
		if c.Type == t {
			return c
		}
	}
	return corev1.PodCondition{}
}

// TestBuildStatusStable: a status written and read back (through JSON, times to the second)
// is built again exactly as it is while nothing changes, so nothing is written; a change of
// readiness moves only that condition's transition time.
func TestBuildStatusStable(t *testing.T) {
	pod := testPod(corev1.Container{Name: "b", Image: "registry.test/b"}, corev1.Container{Name: "a", Image: "registry.test/a"})
	started := time.Date(2026, 11, 28, 10, 0, 0, 987654321, time.UTC)
	st := &podState{
		sb: &sandbox.Sandbox{ID: "uid-1", IP: net.IPv4(10, 1, 0, 2)},
		containers: map[string]*ctr{
			"a": {started: true, ready: true, startedOK: true, status: sandbox.ContainerStatus{Running: true, StartedAt: started}},
			"b": {started: true, ready: true, startedOK: true, status: sandbox.ContainerStatus{Running: true, StartedAt: started, RestartCount: 1},
				lastTerm: terminated(sandbox.ContainerStatus{StartedAt: started.Add(-time.Minute), FinishedAt: started.Add(-time.Second), ExitCode: 2, Reason: "Error"}, "")},
		},
	}
	hostIP := net.IPv4(192, 168, 1, 2)
	now := started.Add(123 * time.Millisecond)

	first := buildStatus(pod, st, hostIP, now)
	if first.Phase != corev1.PodRunning || condition(first, corev1.PodReady).Status != corev1.ConditionTrue {
		t.Fatalf("phase %s, Ready %s; want Running and Ready", first.Phase, condition(first, corev1.PodReady).Status)
	}
	if first.ContainerStatuses[0].Name != "a" {
		t.Errorf("container statuses %s, %s: want them sorted by name", first.ContainerStatuses[0].Name, first.ContainerStatuses[1].Name)
	}
	if c := condition(first, corev1.PodScheduled); c.Status != corev1.ConditionTrue {
		t.Errorf("PodScheduled = %+v, want the scheduler's condition kept", c)
	}
	pod.Status = first
	roundTrip(t, pod)

	later := now.Add(17 * time.Minute)
	again := buildStatus(pod, st, hostIP, later)
	if !equality.Semantic.DeepEqual(pod.Status, again) {
		t.Fatalf("status built again differs from the one read back (-read +built):\n%s", cmp.Diff(pod.Status, again))
	}

	st.containers["a"].ready = false
	changed := buildStatus(pod, st, hostIP, later)
	if equality.Semantic.DeepEqual(pod.Status, changed) {
		t.Fatal("status unchanged after a container became unready")
	}
	for _, typ := range []corev1.PodConditionType{corev1.PodReady, corev1.ContainersReady} {
		c := condition(changed, typ)
		if c.Status != corev1.ConditionFalse || !c.LastTransitionTime.Time.Equal(later.Truncate(time.Second)) || c.Reason != "ContainersNotReady" {
			t.Errorf("%s = %+v, want False since %s, ContainersNotReady", typ, c, later.Truncate(time.Second))
		}
	}
	if got, want := condition(changed, corev1.PodInitialized).LastTransitionTime, condition(first, corev1.PodInitialized).LastTransitionTime; !got.Equal(&want) {
		t.Errorf("Initialized transition time moved from %s to %s", want, got)
	}
	if got := *changed.StartTime; !got.Equal(first.StartTime) {
		t.Errorf("start time moved from %s to %s", first.StartTime, got)
	}
}

func TestBuildStatusReadinessGates(t *testing.T) {
	pod := testPod(corev1.Container{Name: "a"})
	pod.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "example.test/lb"}}
	st := &podState{sb: &sandbox.Sandbox{ID: "uid-1"}, containers: map[string]*ctr{
		"a": {started: true, ready: true, startedOK: true, status: sandbox.ContainerStatus{Running: true, StartedAt: t0}}}}
	s := buildStatus(pod, st, nil, t0)
	if c := condition(s, corev1.PodReady); c.Status != corev1.ConditionFalse || c.Reason != "ReadinessGatesNotReady" {
		t.Errorf("Ready = %+v, want False for a missing readiness gate", c)
	}
	if c := condition(s, corev1.ContainersReady); c.Status != corev1.ConditionTrue {
		t.Errorf("ContainersReady = %+v, want True", c)
	}
	pod.Status = s
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: "example.test/lb", Status: corev1.ConditionTrue})
	s = buildStatus(pod, st, nil, t0)
	if c := condition(s, corev1.PodReady); c.Status != corev1.ConditionTrue {
		t.Errorf("Ready = %+v, want True once the gate is", c)
	}
	if c := condition(s, "example.test/lb"); c.Status != corev1.ConditionTrue {
		t.Errorf("the gate's condition = %+v, want it kept", c)
	}
}
