package node

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// This file holds the worker's decisions about containers: pure functions of what the worker
// knows and the time, with no I/O, so they are tested without root, runc or an API server.

// Back-off of failing containers and image pulls, as the kubelet's.
const (
	backoffInitial = 10 * time.Second
	backoffMax     = 5 * time.Minute
	// backoffReset: a container that ran this long before it exited starts its back-off over.
	backoffReset = 10 * time.Minute
)

// How often a worker looks at its pod when nothing wakes it: a container's exit wakes it
// through an exit watch, a change of the pod through the informer, and probes, back-offs and
// deadlines through the times nextWake computes.
const (
	// resyncPeriod is the longest a worker sleeps, as the kubelet's --sync-frequency.
	resyncPeriod = time.Minute
	// pollPeriod is how often a running container whose exit cannot be watched is looked at.
	pollPeriod = time.Second
	// While a container is starting (its process is not there yet), and while the readiness
	// probe of a container that has not been ready yet fails, the worker looks every
	// firstPeriod for firstWindow after the container's start, then every startPeriod until
	// startWindow (as Knative probes new pods aggressively), so a pod is Ready moments after
	// its server listens: most are within the first window, which a cold start waits on.
	firstPeriod = 10 * time.Millisecond
	firstWindow = 2 * time.Second
	startPeriod = 25 * time.Millisecond
	startWindow = 30 * time.Second
	// stopPollPeriod is how often a terminating pod's containers whose exits cannot be
	// watched are looked at.
	stopPollPeriod = 100 * time.Millisecond
	// retryPeriod is how soon a status write, sandbox removal, pod deletion or kill that
	// failed is tried again.
	retryPeriod = time.Second
)

// Ephemeral storage is measured at least every storagePeriodIdle while a pod uses less than
// half its limit and every storagePeriod above that; a pod whose use grows is measured sooner,
// as often as every storagePeriodMin as it nears its limit (see storageInterval).
const (
	storagePeriodMin  = time.Second
	storagePeriod     = 10 * time.Second
	storagePeriodIdle = time.Minute
)

// storageInterval is how long after a measurement of used bytes (of limit) the next one is
// due, when use grew by rate bytes a second since the measurement before (rate < 0: there was
// none). The next measurement comes when half the room left would be filled at that rate, so
// a steady writer is measured more and more often as it nears its limit and passes it by at
// most storagePeriodMin of writes; between storagePeriodMin and the period for its use. A pod
// measured for the first time is measured again after storagePeriod at the latest, to learn
// its rate.
func storageInterval(used, limit int64, rate float64) time.Duration {
	ceiling := storagePeriodIdle
	if used*2 >= limit || rate < 0 {
		ceiling = storagePeriod
	}
	if rate <= 0 {
		return ceiling
	}
	if used >= limit {
		return storagePeriodMin
	}
	fill := time.Duration(float64(limit-used) / rate / 2 * float64(time.Second))
	return min(max(fill, storagePeriodMin), ceiling)
}

// nextBackoff is the delay before the next start of a container whose last delay was prev and
// whose last run lasted ran: 10 s, doubling to 5 min, back to 10 s after a run of 10 min.
func nextBackoff(prev, ran time.Duration) time.Duration {
	if prev == 0 || ran >= backoffReset {
		return backoffInitial
	}
	return min(2*prev, backoffMax)
}

// exitAction is what a pod's restart policy makes of a container that has exited.
type exitAction int

const (
	exitRestart exitAction = iota // start it again after its back-off
	exitDone                      // it stays exited
	exitFailPod                   // an init container failed for good: the pod fails
)

// onExit applies the restart policy to a container that exited with code. An init container
// that succeeded is done; one that failed is restarted unless the policy is Never, which fails
// the pod. Other containers restart always under Always, after a failure under OnFailure, and
// never under Never.
func onExit(policy corev1.RestartPolicy, init bool, code int) exitAction {
	if init {
		switch {
		case code == 0:
			return exitDone
		case policy == corev1.RestartPolicyNever:
			return exitFailPod
		default:
			return exitRestart
		}
	}
	switch {
	case policy == corev1.RestartPolicyNever:
		return exitDone
	case policy == corev1.RestartPolicyOnFailure && code == 0:
		return exitDone
	default:
		return exitRestart
	}
}

// action is the worker's next step for one container.
type action int

const (
	actNone    action = iota // nothing to do now: it runs, or waits for its back-off
	actStart                 // pull its image if needed and start it (again)
	actBackOff               // it has just exited and will restart: record the exit, wait out the back-off
	actKill                  // a failed probe stopped it and its grace period is over: kill it
	actDone                  // it exited for good
	actFailPod               // an init container failed for good: fail the pod
)

// decide is the next step for container state s of a pod with the given restart policy.
func decide(policy corev1.RestartPolicy, init bool, s *ctr, now time.Time) action {
	switch {
	case s.done:
		return actNone
	case !s.started:
		if now.Before(s.retryAt) {
			return actNone
		}
		return actStart
	case s.status.Running:
		if !s.killAt.IsZero() && !now.Before(s.killAt) {
			return actKill
		}
		return actNone
	case s.status.FinishedAt.IsZero():
		// Neither running nor finished: its process is starting.
		return actNone
	}
	switch onExit(policy, init, s.status.ExitCode) {
	case exitDone:
		return actDone
	case exitFailPod:
		return actFailPod
	}
	switch {
	case s.retryAt.IsZero():
		return actBackOff
	case now.Before(s.retryAt):
		return actNone
	default:
		return actStart
	}
}

// backOff records the exit of a container that will restart, and when it will: its back-off
// counts from the moment it exited, and it waits in CrashLoopBackOff meanwhile, as the
// kubelet reports it.
func (s *ctr) backOff(name string, now time.Time) {
	st := s.status
	s.lastTerm = terminated(st, "")
	s.backoff = nextBackoff(s.backoff, st.FinishedAt.Sub(st.StartedAt))
	from := st.FinishedAt
	if from.IsZero() || from.After(now) {
		from = now
	}
	s.retryAt = from.Add(s.backoff)
	s.waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
		Message: "back-off " + s.backoff.String() + " restarting failed container " + name}
	s.ready, s.killAt = false, time.Time{}
}

// failedStart records a pull or start that failed with reason and message: the container
// waits with that reason and is tried again after its back-off.
func (s *ctr) failedStart(reason, msg string, now time.Time) {
	s.waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
	s.backoff = nextBackoff(s.backoff, 0)
	s.retryAt = now.Add(s.backoff)
}

// nextWake is when the worker must look at its pod again if nothing wakes it sooner: the
// earliest back-off, probe, kill deadline, storage measurement, retry of a failed status
// write, or poll of a container whose exit it cannot watch; at the latest resyncPeriod from
// now.
func (w *podState) nextWake(pod *corev1.Pod, now time.Time) time.Time {
	t, _ := w.wake(pod, now)
	return t
}

// sleep is how long the worker sleeps after a sync at now: until nextWake, coalesced to the
// wake grid unless what is due is the deadline of a termination or of a kill.
func (w *podState) sleep(pod *corev1.Pod, now time.Time) time.Duration {
	t, exact := w.wake(pod, now)
	if exact {
		return t.Sub(now)
	}
	return coalesce(now, t.Sub(now))
}

// wake is nextWake, and whether it is a deadline to keep exactly.
func (w *podState) wake(pod *corev1.Pod, now time.Time) (next time.Time, exact bool) {
	next = now.Add(resyncPeriod)
	at := func(t time.Time) {
		if !t.IsZero() && t.Before(next) {
			next, exact = t, false
		}
	}
	deadline := func(t time.Time) {
		if !t.IsZero() && t.Before(next) {
			next, exact = t, true
		}
	}
	at(w.retry)
	if w.stopping != nil {
		deadline(w.stopping.wake(now))
		for _, s := range w.containers {
			if s.status.Running && s.watchedPid == 0 {
				deadline(now.Add(stopPollPeriod))
			}
		}
		return maxTime(next, now), exact
	}
	if w.failed != "" || terminal(pod) {
		return maxTime(next, now), exact
	}
	at(w.setupRetry)
	for _, c := range allContainers(pod) {
		s, ok := w.containers[c.Name]
		if !ok || s.done {
			continue
		}
		switch {
		case !s.started || !s.status.Running && !s.status.FinishedAt.IsZero():
			at(s.retryAt)
		case !s.status.Running:
			// Starting: its process is not there yet.
			if d, ok := startingPeriod(s.status.StartedAt, now); ok {
				at(now.Add(d))
			} else {
				at(now.Add(pollPeriod))
			}
		default:
			deadline(s.killAt)
			if s.watchedPid == 0 {
				at(now.Add(pollPeriod))
			}
			if s.killAt.IsZero() {
				// Every probe that applies has its state from the sync that saw the container
				// running (probe creates them), with its first run at the initial delay.
				for _, ps := range s.probes {
					at(ps.next)
				}
			}
		}
	}
	if w.sb != nil && !w.storageDue.IsZero() {
		at(w.storageDue)
	}
	return maxTime(next, now), exact
}

// wakeGrid is what coalesce rounds idle sleeps to.
const wakeGrid = time.Second

// coalesce rounds a sleep of d from now, when it is at least a wakeGrid, up to the next
// whole wakeGrid: the workers of idle pods then wake together, once a second at most, rather
// than one after another, which costs the process fewer wake-ups for the same work. A
// probe's next run counts from the sync, which is then on the grid, so periods stay exact;
// short sleeps (a starting pod) are left alone.
func coalesce(now time.Time, d time.Duration) time.Duration {
	if d < wakeGrid {
		return d
	}
	t := now.Add(d)
	if r := t.Truncate(wakeGrid); !r.Equal(t) {
		t = r.Add(wakeGrid)
	}
	return t.Sub(now)
}

func maxTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}

// allContainers is the pod's init containers, then its containers.
func allContainers(pod *corev1.Pod) []corev1.Container {
	return append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
}

func terminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded
}

// startingPeriod is how often a container that started at started is looked at while it
// starts, or until it is first ready: false once startWindow has passed.
func startingPeriod(started, now time.Time) (time.Duration, bool) {
	switch age := now.Sub(started); {
	case age < firstWindow:
		return firstPeriod, true
	case age < startWindow:
		return startPeriod, true
	}
	return 0, false
}
