package node

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/queue/contract"
)

// step runs one sync of w at the clock's time and checks that the worker then sleeps: a
// next wake not after now would spin.
func step(t *testing.T, w *worker) {
	t.Helper()
	if done := w.sync(context.Background()); done {
		t.Fatal("sync reported the pod gone")
	}
	now := w.n.clock.Now()
	if next := w.nextWake(w.pod, now); !next.After(now) {
		t.Fatalf("next wake %s is not after now %s: the worker would spin", next, now)
	}
}

// sleep does what run does between syncs: an exit that woke the worker makes it look at
// every container at once; else it sleeps until its next wake, coalesced.
func sleep(w *worker, clk interface {
	Now() time.Time
	SetTime(time.Time)
}) {
	select {
	case <-w.wake:
		w.lookAll = true
	default:
		now := clk.Now()
		clk.SetTime(now.Add(w.sleep(w.pod, now)))
	}
}

func readyCondition(p *corev1.Pod) corev1.PodCondition {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c
		}
	}
	return corev1.PodCondition{}
}

func TestWorkerWritesStatusOnlyWhenItChanges(t *testing.T) {
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}},
		PeriodSeconds: 10, FailureThreshold: 3, SuccessThreshold: 1, TimeoutSeconds: 1}
	pod := testPod(corev1.Container{Name: "app", Image: "registry.test/app", ReadinessProbe: probe, LivenessProbe: probe})
	n, cs, sb, clk := testNode(t, pod)
	sb.pids = true
	w := newWorker(n, pod)

	step(t, w)
	if got := statusWrites(cs); got != 1 {
		t.Fatalf("after the first sync: %d status writes, want 1", got)
	}
	if w.pod.Status.Phase != corev1.PodRunning || readyCondition(w.pod).Status != corev1.ConditionTrue {
		t.Fatalf("after the first sync: phase %s, Ready %s; want Running and Ready", w.pod.Status.Phase, readyCondition(w.pod).Status)
	}
	readySince := readyCondition(w.pod).LastTransitionTime

	// Idle: syncs at every wake for ten minutes (probes, storage, resyncs) write nothing,
	// and look at the container (whose exit would wake the worker) once a minute.
	reads, syncs := sb.statusReads, 0
	for end := clk.Now().Add(10 * time.Minute); clk.Now().Before(end); syncs++ {
		sleep(w, clk)
		step(t, w)
	}
	if got := statusWrites(cs); got != 1 {
		t.Fatalf("after ten idle minutes: %d status writes, want still 1", got)
	}
	if got := sb.statusReads - reads; got > 10 {
		t.Errorf("%d reads of the container's status in ten idle minutes (%d syncs), want at most one a minute", got, syncs)
	}
	if syncs > 2*60 {
		t.Errorf("%d syncs in ten idle minutes, want about two a period of 10s", syncs)
	}

	// The readiness probe fails three times (its failure threshold): one write, Ready False
	// with a new transition time. The liveness probe fails too and stops the container.
	sb.execCode = 1
	failing := clk.Now()
	for readyCondition(w.pod).Status == corev1.ConditionTrue {
		if clk.Now().Sub(failing) > time.Minute {
			t.Fatal("still Ready a minute after the probes began to fail")
		}
		sleep(w, clk)
		step(t, w)
	}
	if got := clk.Now().Sub(failing); got > 31*time.Second {
		t.Errorf("Ready False %s after the probes began to fail, want within three periods", got)
	}
	if got := statusWrites(cs); got != 2 {
		t.Fatalf("after the readiness probe failed: %d status writes, want 2", got)
	}
	c := readyCondition(w.pod)
	if c.Status != corev1.ConditionFalse || c.LastTransitionTime.Equal(&readySince) {
		t.Errorf("Ready = %s since %s, want False since a later time than %s", c.Status, c.LastTransitionTime, readySince)
	}

	// The liveness probe fails as often: SIGTERM to app, which changes nothing in the status.
	for !slices.Contains(sb.Calls(), "signal app terminated") {
		if clk.Now().Sub(failing) > time.Minute {
			t.Fatal("no SIGTERM to app a minute after its liveness probe began to fail")
		}
		sleep(w, clk)
		step(t, w)
	}
	if got := statusWrites(cs); got != 2 {
		t.Errorf("after the liveness probe failed: %d status writes, want still 2", got)
	}
}

func TestWorkerRestartsACrashingContainerWithBackOff(t *testing.T) {
	pod := testPod(corev1.Container{Name: "app", Image: "registry.test/app"})
	n, cs, sb, clk := testNode(t, pod)
	w := newWorker(n, pod)
	step(t, w)
	sb.Calls()

	start := clk.Now()
	for i, want := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second} {
		clk.Step(time.Second)
		sb.exit(string(pod.UID), "app", 3)
		exited := clk.Now()
		step(t, w)
		st := w.pod.Status.ContainerStatuses[0]
		if st.State.Waiting == nil || st.State.Waiting.Reason != "CrashLoopBackOff" || st.LastTerminationState.Terminated.ExitCode != 3 {
			t.Fatalf("exit %d: status %+v, want CrashLoopBackOff after exit code 3", i, st)
		}
		// The worker wakes for other things too (storage); it starts app exactly when due.
		for {
			clk.SetTime(w.nextWake(w.pod, clk.Now()))
			step(t, w)
			if slices.Contains(sb.Calls(), "start app") {
				break
			}
			if clk.Now().Sub(exited) > want {
				t.Fatalf("exit %d: app not started again %s after its exit", i, want)
			}
		}
		if got := clk.Now().Sub(exited); got != want {
			t.Fatalf("exit %d: app started again %s after its exit, want %s", i, got, want)
		}
		if got := w.pod.Status.ContainerStatuses[0].RestartCount; got != int32(i+1) {
			t.Fatalf("exit %d: restart count %d, want %d", i, got, i+1)
		}
	}
	if w.pod.Status.Phase != corev1.PodRunning {
		t.Errorf("phase %s, want Running", w.pod.Status.Phase)
	}
	// Each exit and each restart is one write; the time in between writes nothing.
	if got := statusWrites(cs); got != 1+2*4 {
		t.Errorf("%d status writes in %s, want %d", got, clk.Now().Sub(start), 1+2*4)
	}
}

func TestWorkerStartsANewPodsContainersTogetherAndRestartsOneAlone(t *testing.T) {
	pod := testPod(corev1.Container{Name: "app", Image: "registry.test/app"}, corev1.Container{Name: "helper", Image: "registry.test/app"})
	n, _, sb, clk := testNode(t, pod)
	w := newWorker(n, pod)
	step(t, w)
	if calls := sb.Calls(); !slices.Contains(calls, "start together app,helper") || slices.Contains(calls, "start together app") {
		t.Fatalf("first sync: calls %q, want both containers started in one call", calls)
	}
	clk.Step(time.Second)
	sb.exit(string(pod.UID), "helper", 1)
	step(t, w)
	for range 10 {
		clk.SetTime(w.nextWake(w.pod, clk.Now()))
		step(t, w)
	}
	calls := sb.Calls()
	if !slices.Contains(calls, "start helper") || slices.Contains(calls, "start app") || slices.ContainsFunc(calls, func(c string) bool { return strings.HasPrefix(c, "start together") }) {
		t.Fatalf("after helper exited: calls %q, want helper alone started again", calls)
	}
	if st := w.pod.Status.ContainerStatuses; len(st) != 2 || st[0].RestartCount != 0 || st[1].RestartCount != 1 {
		t.Fatalf("statuses %+v, want app started once and helper twice", st)
	}
}

func TestWorkerStopsQueueProxyFirst(t *testing.T) {
	for _, tt := range []struct {
		name       string
		watched    bool // exits wake the worker (else it polls every stopPollPeriod)
		proxyExits bool // the queue-proxy exits on SIGTERM
		userExits  bool
		want       []string // time since the deletion, and call
	}{
		{name: "queue-proxy drains, then the user container stops", watched: true, proxyExits: true, userExits: true,
			want: []string{"0s signal queue-proxy terminated", "0s signal user-container terminated", "0s remove sandbox"}},
		{name: "exits polled", proxyExits: true, userExits: true,
			want: []string{"0s signal queue-proxy terminated", "100ms signal user-container terminated", "200ms remove sandbox"}},
		{name: "queue-proxy does not exit: the user container at the grace period minus the reserve", watched: true, userExits: true,
			want: []string{"0s signal queue-proxy terminated", "25s signal user-container terminated", "30s remove sandbox"}},
		{name: "user container does not exit: killed at the deadline", watched: true, proxyExits: true,
			want: []string{"0s signal queue-proxy terminated", "0s signal user-container terminated", "30s remove sandbox"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod(
				corev1.Container{Name: "user-container", Image: "registry.test/app"},
				corev1.Container{Name: contract.ContainerName, Image: contract.Image, Args: contract.Args},
			)
			pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](30)
			n, cs, sb, clk := testNode(t, pod)
			sb.pids = tt.watched
			sb.exitOnTerm[contract.ContainerName] = tt.proxyExits
			sb.exitOnTerm["user-container"] = tt.userExits
			w := newWorker(n, pod)
			step(t, w)
			sb.Calls()

			deleted := w.pod.DeepCopy()
			deleted.DeletionTimestamp = ptr.To(metav1.NewTime(clk.Now()))
			deleted.DeletionGracePeriodSeconds = ptr.To[int64](30)
			w.pod = deleted
			began := clk.Now()
			var log []string
			for i := 0; ; i++ {
				if i > 1000 {
					t.Fatalf("not terminated after 1000 syncs: %q", log)
				}
				done := w.sync(context.Background())
				for _, c := range sb.Calls() {
					log = append(log, clk.Now().Sub(began).String()+" "+c)
				}
				if done {
					break
				}
				sleep(w, clk)
			}
			if diff := cmp.Diff(tt.want, log); diff != "" {
				t.Errorf("termination (-want +got):\n%s", diff)
			}
			if _, err := cs.CoreV1().Pods(pod.Namespace).Get(context.Background(), pod.Name, metav1.GetOptions{}); err == nil {
				t.Error("pod object still there after termination")
			}
		})
	}
}

func TestWorkerRefusesUnsupportedPod(t *testing.T) {
	pod := testPod(corev1.Container{Name: "app", Image: "registry.test/app",
		SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}})
	n, cs, sb, _ := testNode(t, pod)
	w := newWorker(n, pod)
	step(t, w)
	if w.pod.Status.Phase != corev1.PodFailed || w.pod.Status.Reason != "Unsupported" {
		t.Errorf("phase %s reason %q, want Failed, Unsupported", w.pod.Status.Phase, w.pod.Status.Reason)
	}
	if calls := sb.Calls(); len(calls) != 0 {
		t.Errorf("calls %q, want none for a refused pod", calls)
	}
	step(t, w)
	if got := statusWrites(cs); got != 1 {
		t.Errorf("%d status writes, want 1", got)
	}
}

func TestOlder(t *testing.T) {
	pod := func(rv string, deleting bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{ResourceVersion: rv}}
		if deleting {
			p.DeletionTimestamp = &metav1.Time{}
		}
		return p
	}
	for _, tt := range []struct {
		p, cur *corev1.Pod
		want   bool
	}{
		{pod("9", false), pod("10", false), true},
		{pod("10", false), pod("10", false), false},
		{pod("11", false), pod("10", false), false},
		{pod("9", true), pod("10", false), false},
		{pod("x", false), pod("10", false), false},
	} {
		if got := older(tt.p, tt.cur); got != tt.want {
			t.Errorf("older(%s deleting=%v, %s) = %v, want %v", tt.p.ResourceVersion, tt.p.DeletionTimestamp != nil, tt.cur.ResourceVersion, got, tt.want)
		}
	}
}
