package etcdsnapshot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestFirstDue(t *testing.T) {
	start := t0
	for _, tc := range []struct {
		what     string
		newest   time.Time
		interval time.Duration
		want     time.Time
	}{
		{"none yet: a minute after start", time.Time{}, 12 * time.Hour, start.Add(time.Minute)},
		{"none yet, short interval: one interval", time.Time{}, 10 * time.Second, start.Add(10 * time.Second)},
		{"newest recent: an interval after it", start.Add(-2 * time.Hour), 12 * time.Hour, start.Add(10 * time.Hour)},
		{"newest overdue: soon after start", start.Add(-13 * time.Hour), 12 * time.Hour, start.Add(time.Minute)},
		{"newest in the future (clock moved back): an interval after it", start.Add(time.Hour), time.Hour, start.Add(2 * time.Hour)},
	} {
		if got := FirstDue(start, tc.newest, tc.interval); !got.Equal(tc.want) {
			t.Errorf("%s: FirstDue = %v, want %v", tc.what, got, tc.want)
		}
	}
}

// fakeSaver writes empty snapshot files, or fails while fail is set.
type fakeSaver struct {
	mu    sync.Mutex
	fail  bool
	saves chan time.Time
}

func (f *fakeSaver) Save(_ context.Context, dir, name string, at time.Time) (Snapshot, Status, error) {
	defer func() { f.saves <- at }()
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return Snapshot{}, Status{}, errors.New("etcd does not answer")
	}
	file := FileName(name, at)
	if err := os.WriteFile(filepath.Join(dir, file), []byte("x"), 0o600); err != nil {
		return Snapshot{}, Status{}, err
	}
	return Snapshot{File: file, Name: name, Time: at}, Status{}, nil
}

func TestSchedulerTakesPrunesAndRetries(t *testing.T) {
	dir := t.TempDir()
	mine := touch(t, dir, OnDemand, t0.Add(-48*time.Hour), 1)
	// The newest scheduled snapshot is 30 minutes old: the first is due in 30 minutes.
	touch(t, dir, Scheduled, t0.Add(-30*time.Minute), 1)

	clock := clocktesting.NewFakeClock(t0)
	saver := &fakeSaver{saves: make(chan time.Time, 10)}
	s, err := NewScheduler(SchedulerOptions{Saver: saver, Dir: dir, Interval: time.Hour, Retention: 2, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()

	// step moves the clock once the scheduler waits, and returns the save it caused, if any.
	step := func(d time.Duration) (time.Time, bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !clock.HasWaiters() {
			if time.Now().After(deadline) {
				t.Fatal("the scheduler does not wait for its timer")
			}
			time.Sleep(time.Millisecond)
		}
		clock.Step(d)
		select {
		case at := <-saver.saves:
			return at, true
		case <-time.After(50 * time.Millisecond):
			return time.Time{}, false
		}
	}

	if _, saved := step(29 * time.Minute); saved {
		t.Fatal("saved before the first snapshot was due")
	}
	if at, saved := step(time.Minute); !saved || !at.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("first save at %v (%t), want %v", at, saved, t0.Add(30*time.Minute))
	}
	// A failure is retried at the next tick, an interval later.
	saver.mu.Lock()
	saver.fail = true
	saver.mu.Unlock()
	if _, saved := step(time.Hour); !saved {
		t.Fatal("no attempt an interval later")
	}
	saver.mu.Lock()
	saver.fail = false
	saver.mu.Unlock()
	if at, saved := step(time.Hour); !saved || !at.Equal(t0.Add(150*time.Minute)) {
		t.Fatalf("save after the failure at %v (%t), want %v", at, saved, t0.Add(150*time.Minute))
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Start = %v after cancel, want nil", err)
	}
	// The two newest scheduled ones are kept, and the user's.
	left, _ := List(dir)
	want := []string{FileName(Scheduled, t0.Add(150*time.Minute)), FileName(Scheduled, t0.Add(30*time.Minute)), mine}
	if diff := cmp.Diff(want, files(left)); diff != "" {
		t.Errorf("snapshots left (-want +got):\n%s", diff)
	}
}

func TestNewSchedulerRefusesBadOptions(t *testing.T) {
	for _, o := range []SchedulerOptions{
		{Saver: &fakeSaver{}, Dir: "d", Interval: 0, Retention: 1},
		{Saver: &fakeSaver{}, Dir: "d", Interval: time.Hour, Retention: 0},
		{Saver: &fakeSaver{}, Dir: "", Interval: time.Hour, Retention: 1},
		{Dir: "d", Interval: time.Hour, Retention: 1},
	} {
		if _, err := NewScheduler(o); err == nil {
			t.Errorf("NewScheduler(%+v) = nil error", o)
		}
	}
}
