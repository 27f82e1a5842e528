package node

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/sandbox"
)

// How a pod stops. Every container shares one deadline: the pod's grace period (its deletion
// grace period, else terminationGracePeriodSeconds, else 30 s) from the moment the node sees
// the deletion. The order within it:
//
//  1. At once, SIGTERM to the queue-proxy (the sidecar named contract.ContainerName with
//     contract.Image); the user containers keep running and serve the requests it drains.
//     A pod without a queue-proxy gets SIGTERM in all its containers at once, here.
//  2. SIGTERM to every other container (init containers still running included), together,
//     as soon as the queue-proxy has exited, and at the latest when only userReserve of the
//     grace period is left.
//  3. At the deadline, SIGKILL to whatever still runs (the sandbox is removed); as soon as
//     nothing runs, the sandbox is removed and the pod object deleted.
//
// So a pod takes at most its grace period, never one grace period per container.

// userReserve is the part of a grace period kept for the user containers after the
// queue-proxy drained: half the grace period, at most maxUserReserve.
func userReserve(grace time.Duration) time.Duration { return min(grace/2, maxUserReserve) }

const maxUserReserve = 5 * time.Second

// stopPlan is the termination of one pod: who gets SIGTERM first, when the rest get it at the
// latest, and the deadline.
type stopPlan struct {
	first    []string  // SIGTERM at once: the queue-proxy, or every container without one
	rest     []string  // SIGTERM once none of first runs, or at restBy
	restBy   time.Time // the latest SIGTERM of rest
	deadline time.Time // SIGKILL to what still runs
	termed   map[string]bool
}

// deletionGrace is the grace period of a pod being deleted.
func deletionGrace(pod *corev1.Pod) time.Duration {
	return time.Duration(ptr.Deref(pod.DeletionGracePeriodSeconds, ptr.Deref(pod.Spec.TerminationGracePeriodSeconds, 30))) * time.Second
}

// planStop is the termination of pod, seen deleted at now.
func planStop(pod *corev1.Pod, now time.Time) *stopPlan {
	grace := deletionGrace(pod)
	p := &stopPlan{deadline: now.Add(grace), termed: map[string]bool{}}
	var sidecars, others []string
	for _, c := range allContainers(pod) {
		if contract.IsSidecar(&c) {
			sidecars = append(sidecars, c.Name)
		} else {
			others = append(others, c.Name)
		}
	}
	if len(sidecars) == 0 || len(others) == 0 || grace <= 0 {
		p.first, p.restBy = append(sidecars, others...), now
		return p
	}
	p.first, p.rest = sidecars, others
	p.restBy = p.deadline.Add(-userReserve(grace))
	return p
}

// shorten applies a later, shorter grace period (a forced deletion) seen at now: the deadline
// and the rest's latest SIGTERM move closer, never further.
func (p *stopPlan) shorten(pod *corev1.Pod, now time.Time) {
	grace := deletionGrace(pod)
	if d := now.Add(grace); d.Before(p.deadline) {
		p.deadline = d
		p.restBy = minTime(p.restBy, d.Add(-userReserve(grace)))
	}
}

// step is what to do at now, given which containers run: the containers to send SIGTERM to
// (each once), and whether the termination is over — nothing runs any more, or the deadline
// has come and what still runs is to be killed.
func (p *stopPlan) step(running map[string]bool, now time.Time) (term []string, finish bool) {
	if !now.Before(p.deadline) {
		return nil, true
	}
	firstRunning := false
	for _, name := range p.first {
		if running[name] {
			firstRunning = true
			if !p.termed[name] {
				term = append(term, name)
			}
		}
	}
	if !firstRunning || !now.Before(p.restBy) {
		for _, name := range p.rest {
			if running[name] && !p.termed[name] {
				term = append(term, name)
			}
		}
	}
	for _, name := range term {
		p.termed[name] = true
	}
	anyRunning := false
	for _, r := range running {
		anyRunning = anyRunning || r
	}
	return term, !anyRunning
}

// wake is the next time the plan acts by itself: the rest's SIGTERM, then the deadline.
// Exits wake the worker sooner.
func (p *stopPlan) wake(now time.Time) time.Time {
	for _, name := range p.rest {
		if !p.termed[name] && now.Before(p.restBy) {
			return p.restBy
		}
	}
	return p.deadline
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// terminate advances the pod's termination one step (see stopPlan); it returns true once the
// sandbox is removed and the pod object deleted.
func (w *worker) terminate(ctx context.Context, now time.Time) bool {
	pod := w.pod
	w.retry = time.Time{}
	if w.stopping == nil {
		w.stopping = planStop(pod, now)
	} else {
		w.stopping.shorten(pod, now)
	}
	if w.sb == nil {
		// A sandbox may exist from an earlier run of the node.
		w.sb = &sandbox.Sandbox{ID: string(pod.UID)}
	}
	running := map[string]bool{}
	for _, name := range slices.Concat(w.stopping.first, w.stopping.rest) {
		st, err := w.n.opts.Sandboxes.ContainerStatus(ctx, w.sb.ID, name)
		if err != nil {
			st = sandbox.ContainerStatus{Name: name}
		}
		s := w.state(name)
		s.status = st
		if st.Running {
			running[name] = true
			w.watch(ctx, s)
		}
	}
	term, finish := w.stopping.step(running, now)
	for _, name := range term {
		w.n.recorder.Eventf(pod, corev1.EventTypeNormal, "Killing", "Stopping container %s", name)
		if err := w.n.opts.Sandboxes.SignalContainer(ctx, w.sb.ID, name, syscall.SIGTERM); err != nil {
			w.log().Warn("stopping container", "container", name, "err", err)
		}
	}
	if !finish {
		return false
	}
	// RemoveSandbox kills what still runs: the deadline has come.
	if err := w.n.opts.Sandboxes.RemoveSandbox(ctx, w.sb.ID); err != nil {
		w.log().Warn("removing sandbox", "err", err)
		w.retry = now.Add(retryPeriod)
		return false
	}
	if w.sb.IP != nil && w.socketDir != "" {
		w.n.sockets.forget(w.sb.IP, w.socketDir)
	}
	_ = os.RemoveAll(filepath.Join(w.n.opts.StateDir, "pods", string(pod.UID)))
	err := w.n.clientFor(pod).CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		w.log().Warn("deleting pod", "err", err)
		w.retry = now.Add(retryPeriod)
		return false
	}
	return true
}
