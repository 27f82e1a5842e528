package sched

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, s := range []string{"batch", "normal"} {
		if p, err := Parse(s); err != nil || string(p) != s {
			t.Errorf("Parse(%q) = %q, %v", s, p, err)
		}
	}
	for _, s := range []string{"", "fifo", "Batch", "idle"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q): no error", s)
		}
	}
}

func threads(t *testing.T, pid int) []int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	var tids []int
	for _, e := range tasks {
		tid, _ := strconv.Atoi(e.Name())
		tids = append(tids, tid)
	}
	return tids
}

func requireAll(t *testing.T, pid int, want Policy) {
	t.Helper()
	for _, tid := range threads(t, pid) {
		got, err := Of(tid)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("thread %d of %d: policy %s, want %s", tid, pid, got, want)
		}
	}
}

// A child process of several threads (a Go program: this test binary, asked only to
// sleep) moves to batch and back, every thread of it, and threads it starts later
// take batch from their creator.
func TestApplyToAnotherProcess(t *testing.T) {
	if os.Getenv("SCHED_TEST_SLEEP") != "" {
		time.Sleep(time.Minute)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestApplyToAnotherProcess$")
	cmd.Env = append(os.Environ(), "SCHED_TEST_SLEEP=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for len(threads(t, pid)) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := Apply(pid, Batch); err != nil {
		t.Fatal(err)
	}
	requireAll(t, pid, Batch)
	if err := Apply(pid, Normal); err != nil {
		t.Fatal(err)
	}
	requireAll(t, pid, Normal)
}

func TestApplyToThisProcess(t *testing.T) {
	t.Cleanup(func() {
		if err := Apply(0, Normal); err != nil {
			t.Error(err)
		}
	})
	if err := Apply(0, Batch); err != nil {
		t.Fatal(err)
	}
	requireAll(t, os.Getpid(), Batch)
	// Threads started from here on take batch from the thread that starts them: each
	// goroutine locked to its thread keeps that thread, so the runtime starts new ones.
	before := len(threads(t, os.Getpid()))
	done := make(chan struct{})
	started := make(chan struct{})
	for range 4 {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			started <- struct{}{}
			<-done
		}()
	}
	for range 4 {
		<-started
	}
	defer close(done)
	if after := len(threads(t, os.Getpid())); after <= before {
		t.Fatalf("no new thread started (%d before, %d after)", before, after)
	}
	requireAll(t, os.Getpid(), Batch)
}

func TestApplyRefusesUnknownPolicy(t *testing.T) {
	if err := Apply(0, Policy("fifo")); err == nil {
		t.Fatal("no error")
	}
}
