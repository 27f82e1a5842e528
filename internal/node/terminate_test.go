package node

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/queue/contract"
)

func revisionPod(grace int64) *corev1.Pod {
	pod := testPod(
		corev1.Container{Name: "user-container", Image: "registry.test/app"},
		corev1.Container{Name: contract.ContainerName, Image: contract.Image},
	)
	pod.Spec.TerminationGracePeriodSeconds = ptr.To(grace)
	return pod
}

func TestPlanStop(t *testing.T) {
	for _, tt := range []struct {
		name                  string
		pod                   *corev1.Pod
		wantFirst, wantRest   []string
		wantRestBy, wantDeadl time.Duration
	}{
		{name: "revision pod, 30s: queue-proxy first, user containers 5s before the deadline at the latest",
			pod: revisionPod(30), wantFirst: []string{"queue-proxy"}, wantRest: []string{"user-container"},
			wantRestBy: 25 * time.Second, wantDeadl: 30 * time.Second},
		{name: "revision pod, 2s: half the grace period for each",
			pod: revisionPod(2), wantFirst: []string{"queue-proxy"}, wantRest: []string{"user-container"},
			wantRestBy: time.Second, wantDeadl: 2 * time.Second},
		{name: "revision pod, no grace: all at once", pod: revisionPod(0),
			wantFirst: []string{"queue-proxy", "user-container"}},
		{name: "no queue-proxy: all at once", wantDeadl: 30 * time.Second,
			pod:       testPod(corev1.Container{Name: "a"}, corev1.Container{Name: "b"}),
			wantFirst: []string{"a", "b"}},
		{name: "an image other than the sidecar's is a user container", wantDeadl: 30 * time.Second,
			pod:       testPod(corev1.Container{Name: "queue-proxy", Image: "registry.test/proxy"}, corev1.Container{Name: "b"}),
			wantFirst: []string{"queue-proxy", "b"}},
		{name: "init containers still running stop with the user containers", wantRestBy: 25 * time.Second, wantDeadl: 30 * time.Second,
			pod: func() *corev1.Pod {
				p := revisionPod(30)
				p.Spec.InitContainers = []corev1.Container{{Name: "init"}}
				return p
			}(),
			wantFirst: []string{"queue-proxy"}, wantRest: []string{"init", "user-container"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := planStop(tt.pod, t0)
			if diff := cmp.Diff(tt.wantFirst, p.first); diff != "" {
				t.Errorf("first (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRest, p.rest); diff != "" {
				t.Errorf("rest (-want +got):\n%s", diff)
			}
			if got := p.restBy.Sub(t0); got != tt.wantRestBy {
				t.Errorf("rest by %s, want %s", got, tt.wantRestBy)
			}
			if got := p.deadline.Sub(t0); got != tt.wantDeadl {
				t.Errorf("deadline %s, want %s", got, tt.wantDeadl)
			}
		})
	}
}

func TestStopPlanStep(t *testing.T) {
	type tick struct {
		at       time.Duration
		running  []string
		wantTerm []string
		wantDone bool
		wantWake time.Duration
	}
	for _, tt := range []struct {
		name  string
		pod   *corev1.Pod
		ticks []tick
	}{
		{name: "queue-proxy drains, then the user container stops", pod: revisionPod(30), ticks: []tick{
			{at: 0, running: []string{"queue-proxy", "user-container"}, wantTerm: []string{"queue-proxy"}, wantWake: 25 * time.Second},
			{at: 3 * time.Second, running: []string{"queue-proxy", "user-container"}, wantWake: 25 * time.Second},
			{at: 4 * time.Second, running: []string{"user-container"}, wantTerm: []string{"user-container"}, wantWake: 30 * time.Second},
			{at: 5 * time.Second, running: nil, wantDone: true},
		}},
		{name: "queue-proxy does not drain: the user container at 25s, kill at 30s", pod: revisionPod(30), ticks: []tick{
			{at: 0, running: []string{"queue-proxy", "user-container"}, wantTerm: []string{"queue-proxy"}, wantWake: 25 * time.Second},
			{at: 25 * time.Second, running: []string{"queue-proxy", "user-container"}, wantTerm: []string{"user-container"}, wantWake: 30 * time.Second},
			{at: 29 * time.Second, running: []string{"queue-proxy"}, wantWake: 30 * time.Second},
			{at: 30 * time.Second, running: []string{"queue-proxy"}, wantDone: true},
		}},
		{name: "queue-proxy not running: the user container at once", pod: revisionPod(30), ticks: []tick{
			{at: 0, running: []string{"user-container"}, wantTerm: []string{"user-container"}, wantWake: 30 * time.Second},
			{at: time.Second, running: nil, wantDone: true},
		}},
		{name: "no queue-proxy: all at once, one shared deadline",
			pod: testPod(corev1.Container{Name: "a"}, corev1.Container{Name: "b"}), ticks: []tick{
				{at: 0, running: []string{"a", "b"}, wantTerm: []string{"a", "b"}, wantWake: 30 * time.Second},
				{at: 10 * time.Second, running: []string{"b"}, wantWake: 30 * time.Second},
				{at: 30 * time.Second, running: []string{"b"}, wantDone: true},
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := planStop(tt.pod, t0)
			for _, k := range tt.ticks {
				running := map[string]bool{}
				for _, r := range k.running {
					running[r] = true
				}
				now := t0.Add(k.at)
				term, done := p.step(running, now)
				if diff := cmp.Diff(k.wantTerm, term); diff != "" {
					t.Errorf("at %s: SIGTERM (-want +got):\n%s", k.at, diff)
				}
				if done != k.wantDone {
					t.Errorf("at %s: done %v, want %v", k.at, done, k.wantDone)
				}
				if !done {
					if got := p.wake(now).Sub(t0); got != k.wantWake {
						t.Errorf("at %s: wake at %s, want %s", k.at, got, k.wantWake)
					}
				}
			}
		})
	}
}

func TestStopPlanShorten(t *testing.T) {
	pod := revisionPod(30)
	p := planStop(pod, t0)
	// A forced deletion 10s in: grace 2s from then.
	forced := pod.DeepCopy()
	forced.DeletionGracePeriodSeconds = ptr.To[int64](2)
	p.shorten(forced, t0.Add(10*time.Second))
	if got := p.deadline.Sub(t0); got != 12*time.Second {
		t.Errorf("deadline %s, want 12s", got)
	}
	if got := p.restBy.Sub(t0); got != 11*time.Second {
		t.Errorf("rest by %s, want 11s", got)
	}
	// A longer grace period later changes nothing.
	p.shorten(pod, t0.Add(11*time.Second))
	if got := p.deadline.Sub(t0); got != 12*time.Second {
		t.Errorf("deadline after a longer grace period %s, want still 12s", got)
	}
}
