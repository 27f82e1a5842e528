package node

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gantry-run/gantry/internal/sandbox"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

func TestNextBackoff(t *testing.T) {
	for _, tt := range []struct {
		prev, ran, want time.Duration
	}{
		{0, 0, 10 * time.Second},
		{10 * time.Second, time.Second, 20 * time.Second},
		{20 * time.Second, time.Second, 40 * time.Second},
		{80 * time.Second, time.Second, 160 * time.Second},
		{160 * time.Second, time.Second, 5 * time.Minute},
		{5 * time.Minute, time.Second, 5 * time.Minute},
		{5 * time.Minute, 10*time.Minute - time.Second, 5 * time.Minute},
		{5 * time.Minute, 10 * time.Minute, 10 * time.Second}, // a long run starts over
	} {
		if got := nextBackoff(tt.prev, tt.ran); got != tt.want {
			t.Errorf("nextBackoff(%s, ran %s) = %s, want %s", tt.prev, tt.ran, got, tt.want)
		}
	}
}

func TestOnExit(t *testing.T) {
	always, onFailure, never := corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever
	for _, tt := range []struct {
		policy corev1.RestartPolicy
		init   bool
		code   int
		want   exitAction
	}{
		{always, false, 0, exitRestart},
		{always, false, 1, exitRestart},
		{onFailure, false, 0, exitDone},
		{onFailure, false, 1, exitRestart},
		{never, false, 0, exitDone},
		{never, false, 1, exitDone},
		{always, true, 0, exitDone},
		{always, true, 1, exitRestart},
		{onFailure, true, 0, exitDone},
		{onFailure, true, 1, exitRestart},
		{never, true, 0, exitDone},
		{never, true, 1, exitFailPod},
	} {
		if got := onExit(tt.policy, tt.init, tt.code); got != tt.want {
			t.Errorf("onExit(%s, init %v, exit %d) = %d, want %d", tt.policy, tt.init, tt.code, got, tt.want)
		}
	}
}

func TestDecide(t *testing.T) {
	running := sandbox.ContainerStatus{Running: true, StartedAt: t0.Add(-time.Minute)}
	exited := func(code int) sandbox.ContainerStatus {
		return sandbox.ContainerStatus{StartedAt: t0.Add(-time.Minute), FinishedAt: t0.Add(-time.Second), ExitCode: code}
	}
	for _, tt := range []struct {
		name   string
		policy corev1.RestartPolicy
		init   bool
		s      ctr
		want   action
	}{
		{name: "new container starts", s: ctr{}, want: actStart},
		{name: "failed pull waits for its back-off", s: ctr{retryAt: t0.Add(time.Second)}, want: actNone},
		{name: "failed pull retried when due", s: ctr{retryAt: t0}, want: actStart},
		{name: "running", s: ctr{started: true, status: running}, want: actNone},
		{name: "stopped by a probe, grace not over", s: ctr{started: true, status: running, killAt: t0.Add(time.Second)}, want: actNone},
		{name: "stopped by a probe, grace over", s: ctr{started: true, status: running, killAt: t0}, want: actKill},
		{name: "starting (no process yet)", s: ctr{started: true, status: sandbox.ContainerStatus{StartedAt: t0}}, want: actNone},
		{name: "exited under Always backs off", policy: corev1.RestartPolicyAlways, s: ctr{started: true, status: exited(0)}, want: actBackOff},
		{name: "backing off", policy: corev1.RestartPolicyAlways, s: ctr{started: true, status: exited(1), retryAt: t0.Add(time.Second)}, want: actNone},
		{name: "back-off over", policy: corev1.RestartPolicyAlways, s: ctr{started: true, status: exited(1), retryAt: t0}, want: actStart},
		{name: "succeeded under OnFailure", policy: corev1.RestartPolicyOnFailure, s: ctr{started: true, status: exited(0)}, want: actDone},
		{name: "failed under OnFailure backs off", policy: corev1.RestartPolicyOnFailure, s: ctr{started: true, status: exited(2)}, want: actBackOff},
		{name: "failed under Never", policy: corev1.RestartPolicyNever, s: ctr{started: true, status: exited(2)}, want: actDone},
		{name: "init failed under Never fails the pod", policy: corev1.RestartPolicyNever, init: true, s: ctr{started: true, status: exited(2)}, want: actFailPod},
		{name: "init succeeded", policy: corev1.RestartPolicyAlways, init: true, s: ctr{started: true, status: exited(0)}, want: actDone},
		{name: "done", s: ctr{started: true, status: exited(0), done: true}, want: actNone},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := decide(tt.policy, tt.init, &tt.s, t0); got != tt.want {
				t.Errorf("decide = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestBackOff(t *testing.T) {
	s := &ctr{started: true, backoff: 20 * time.Second, ready: true, killAt: t0,
		status: sandbox.ContainerStatus{StartedAt: t0.Add(-5 * time.Second), FinishedAt: t0.Add(-2 * time.Second), ExitCode: 1, Reason: "Error"}}
	s.backOff("app", t0)
	if s.backoff != 40*time.Second || !s.retryAt.Equal(t0.Add(38*time.Second)) {
		t.Errorf("back-off %s until %s, want 40s from the exit, until %s", s.backoff, s.retryAt, t0.Add(38*time.Second))
	}
	if s.waiting == nil || s.waiting.Reason != "CrashLoopBackOff" || s.lastTerm == nil || s.lastTerm.ExitCode != 1 || s.ready || !s.killAt.IsZero() {
		t.Errorf("after backOff: waiting %+v, last termination %+v, ready %v, killAt %s", s.waiting, s.lastTerm, s.ready, s.killAt)
	}
}

func TestStorageInterval(t *testing.T) {
	const mib = 1 << 20
	for _, tt := range []struct {
		name        string
		used, limit int64
		rate        float64
		want        time.Duration
	}{
		{"first measurement, under half", 0, 100, -1, 10 * time.Second},
		{"first measurement, over the limit", 150, 100, -1, 10 * time.Second},
		{"steady, under half", 49, 100, 0, time.Minute},
		{"steady, over half", 50, 100, 0, 10 * time.Second},
		{"shrinking", 60, 100, -5, 10 * time.Second},
		{"slow writer far from its limit", 0, 1 << 30, 1024, time.Minute},
		{"1 MiB/s, 20 MiB of room", 4 * mib, 24 * mib, mib, 10 * time.Second},
		{"1 MiB/s, 8 MiB of room", 16 * mib, 24 * mib, mib, 4 * time.Second},
		{"1 MiB/s, 1 MiB of room", 23 * mib, 24 * mib, mib, time.Second},
		{"fast writer under half", 0, 1 << 30, 100 * mib, 5120 * time.Millisecond},
		{"growing past the limit", 150, 100, 1, time.Second},
	} {
		if got := storageInterval(tt.used, tt.limit, tt.rate); got != tt.want {
			t.Errorf("%s: storageInterval(%d of %d, %g B/s) = %s, want %s", tt.name, tt.used, tt.limit, tt.rate, got, tt.want)
		}
	}
}

func TestNextWake(t *testing.T) {
	pod := testPod(corev1.Container{Name: "app"})
	sb := &sandbox.Sandbox{ID: "uid-1"}
	running := sandbox.ContainerStatus{Running: true, Pid: 7, StartedAt: t0.Add(-time.Hour)}
	for _, tt := range []struct {
		name string
		st   podState
		want time.Duration
	}{
		{name: "idle, watched, no probes: resync", want: resyncPeriod,
			st: podState{sb: sb, containers: map[string]*ctr{"app": {started: true, status: running, watchedPid: 7}}}},
		{name: "exit not watched: poll", want: pollPeriod,
			st: podState{sb: sb, containers: map[string]*ctr{"app": {started: true, status: running}}}},
		{name: "probe due in 7s", want: 7 * time.Second,
			st: podState{sb: sb, containers: map[string]*ctr{"app": {started: true, status: running, watchedPid: 7,
				probes: map[probeKind]*probeState{probeReadiness: {next: t0.Add(7 * time.Second)}}}}}},
		{name: "probes not run while a kill is pending", want: 30 * time.Second,
			st: podState{sb: sb, containers: map[string]*ctr{"app": {started: true, status: running, watchedPid: 7, killAt: t0.Add(30 * time.Second),
				probes: map[probeKind]*probeState{probeReadiness: {next: t0.Add(7 * time.Second)}}}}}},
		{name: "back-off", want: 40 * time.Second,
			st: podState{sb: sb, containers: map[string]*ctr{"app": {started: true, retryAt: t0.Add(40 * time.Second),
				status: sandbox.ContainerStatus{StartedAt: t0.Add(-time.Minute), FinishedAt: t0.Add(-time.Second)}}}}},
		{name: "starting", want: firstPeriod,
			st: podState{sb: sb, containers: map[string]*ctr{"app": {started: true, status: sandbox.ContainerStatus{StartedAt: t0}}}}},
		{name: "slow to start", want: startPeriod,
			st: podState{sb: sb, containers: map[string]*ctr{"app": {started: true, status: sandbox.ContainerStatus{StartedAt: t0.Add(-firstWindow)}}}}},
		{name: "starting for too long", want: pollPeriod,
			st: podState{sb: sb, containers: map[string]*ctr{"app": {started: true, status: sandbox.ContainerStatus{StartedAt: t0.Add(-startWindow)}}}}},
		{name: "storage measured 50s ago, well under its limit", want: 10 * time.Second,
			st: podState{sb: sb, storageAt: t0.Add(-50 * time.Second), storageDue: t0.Add(10 * time.Second), storageUsed: 1, storageLimit: 100,
				containers: map[string]*ctr{"app": {started: true, status: running, watchedPid: 7}}}},
		{name: "sandbox creation retried", want: 20 * time.Second,
			st: podState{setupRetry: t0.Add(20 * time.Second), containers: map[string]*ctr{}}},
		{name: "failed status write retried", want: retryPeriod,
			st: podState{sb: sb, retry: t0.Add(retryPeriod), containers: map[string]*ctr{"app": {started: true, status: running, watchedPid: 7}}}},
		{name: "a failed pod only resyncs", want: resyncPeriod,
			st: podState{sb: sb, failed: "Evicted", containers: map[string]*ctr{"app": {started: true, status: running}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.st.nextWake(pod, t0).Sub(t0); got != tt.want {
				t.Errorf("next wake in %s, want %s", got, tt.want)
			}
		})
	}
}

func TestCoalesce(t *testing.T) {
	now := t0.Add(300 * time.Millisecond)
	for _, tt := range []struct {
		d, want time.Duration
	}{
		{25 * time.Millisecond, 25 * time.Millisecond}, // short sleeps stay
		{999 * time.Millisecond, 999 * time.Millisecond},
		{time.Second, 1700 * time.Millisecond}, // up to the next whole second
		{1700 * time.Millisecond, 1700 * time.Millisecond},
		{10 * time.Second, 10700 * time.Millisecond},
	} {
		if got := coalesce(now, tt.d); got != tt.want {
			t.Errorf("coalesce(%s) = %s, want %s", tt.d, got, tt.want)
		}
	}
}

func TestSleepKeepsDeadlines(t *testing.T) {
	pod := testPod(corev1.Container{Name: "app"})
	now := t0.Add(300 * time.Millisecond)
	running := sandbox.ContainerStatus{Running: true, Pid: 7, StartedAt: t0.Add(-time.Hour)}
	probing := podState{sb: &sandbox.Sandbox{ID: "uid-1"}, containers: map[string]*ctr{"app": {started: true, status: running, watchedPid: 7,
		probes: map[probeKind]*probeState{probeLiveness: {next: now.Add(7 * time.Second)}}}}}
	if got := probing.sleep(pod, now); got != 7700*time.Millisecond {
		t.Errorf("sleep before a probe = %s, want 7.7s (to the next whole second)", got)
	}
	killing := podState{sb: &sandbox.Sandbox{ID: "uid-1"}, containers: map[string]*ctr{"app": {started: true, status: running, watchedPid: 7,
		killAt: now.Add(2 * time.Second)}}}
	if got := killing.sleep(pod, now); got != 2*time.Second {
		t.Errorf("sleep before a kill = %s, want exactly 2s", got)
	}
	stopping := podState{stopping: planStop(pod, now), containers: map[string]*ctr{}}
	if got := stopping.sleep(pod, now); got != 30*time.Second {
		t.Errorf("sleep of a terminating pod = %s, want exactly its 30s grace period", got)
	}
}
