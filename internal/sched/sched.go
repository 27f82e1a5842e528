// Package sched sets the Linux scheduling policy of a process's threads.
//
// Gantry's request path hands each request from one process to the next: the load's client
// to the gateway, the gateway to the pod's queue-proxy, the queue-proxy to the app, and the
// answer back. Under the default policy (SCHED_OTHER) a thread woken by a message preempts
// the thread that sent it, so on a busy machine each message costs a context switch, and a
// relay handles one request per wake-up. A SCHED_BATCH thread does not preempt on wake-up:
// it runs when the sender yields or its slice ends, and then finds several requests ready.
// Its share of CPU is the same; only when it runs changes. No privilege is needed to move a
// thread of one's own between the two.
package sched

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Policy is a Linux scheduling policy for ordinary (not real-time) threads.
type Policy string

const (
	// Normal is SCHED_OTHER, Linux's default.
	Normal Policy = "normal"
	// Batch is SCHED_BATCH: the same share of CPU, without preempting on wake-up.
	Batch Policy = "batch"
)

// Parse reads a policy's name.
func Parse(s string) (Policy, error) {
	switch p := Policy(s); p {
	case Normal, Batch:
		return p, nil
	}
	return "", fmt.Errorf("%q is not a scheduling policy: batch or normal", s)
}

func (p Policy) number() uint32 {
	if p == Batch {
		return unix.SCHED_BATCH
	}
	return unix.SCHED_NORMAL
}

// Of is thread tid's policy: Normal, Batch, or an error for any other (real-time, idle).
func Of(tid int) (Policy, error) {
	a, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return "", fmt.Errorf("thread %d: %w", tid, err)
	}
	switch a.Policy {
	case unix.SCHED_NORMAL:
		return Normal, nil
	case unix.SCHED_BATCH:
		return Batch, nil
	}
	return "", fmt.Errorf("thread %d: scheduling policy %d is neither normal nor batch", tid, a.Policy)
}

// Apply gives every thread of process pid (0: this process) policy p, keeping each thread's
// nice value. A thread started meanwhile takes its creator's policy, so Apply goes over the
// threads again until a pass changes none. Threads that exit meanwhile are skipped.
func Apply(pid int, p Policy) error {
	if _, err := Parse(string(p)); err != nil {
		return err
	}
	dir := "/proc/self/task"
	if pid != 0 {
		dir = "/proc/" + strconv.Itoa(pid) + "/task"
	}
	for pass := 0; pass < 10; pass++ {
		tasks, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("listing threads: %w", err)
		}
		changed := 0
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			a, err := unix.SchedGetAttr(tid, 0)
			if errors.Is(err, unix.ESRCH) {
				continue
			}
			if err != nil {
				return fmt.Errorf("thread %d: %w", tid, err)
			}
			if a.Policy == p.number() {
				continue
			}
			a.Policy, a.Flags = p.number(), 0
			if err := unix.SchedSetAttr(tid, a, 0); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("thread %d: setting scheduling policy %s: %w", tid, p, err)
			}
			changed++
		}
		if changed == 0 {
			return nil
		}
	}
	return fmt.Errorf("threads of process %d kept starting with another policy than %s", pid, p)
}
