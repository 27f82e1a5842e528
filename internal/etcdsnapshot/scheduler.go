package etcdsnapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/utils/clock"
)

// Defaults of gantry server's schedule: as k3s, a snapshot every 12 hours and the newest 5
// kept, so the oldest is two and a half days old.
const (
	DefaultInterval  = 12 * time.Hour
	DefaultRetention = 5
)

// saveTimeout bounds one scheduled save; a save that takes longer fails and is retried at the
// next tick.
const saveTimeout = 5 * time.Minute

// maxFirstDelay bounds the wait after start before a snapshot that is already due: the
// server's first seconds are busy enough.
const maxFirstDelay = time.Minute

// Saver takes one snapshot into dir: Source.Save.
type Saver interface {
	Save(ctx context.Context, dir, name string, at time.Time) (Snapshot, Status, error)
}

// SchedulerOptions configures a Scheduler.
type SchedulerOptions struct {
	Saver Saver
	// Dir is where the snapshots go.
	Dir string
	// Interval is the time between two scheduled snapshots; Retention how many of them are
	// kept (the newest). Snapshots taken under other names are never pruned.
	Interval  time.Duration
	Retention int
	// Clock tells the time (nil: the real one).
	Clock  clock.Clock
	Logger *slog.Logger
}

// Scheduler takes a snapshot every interval while the server runs, under the name Scheduled,
// and prunes the scheduled ones past the retention. A failed snapshot is logged and tried
// again at the next tick; it never stops the server.
type Scheduler struct {
	opts SchedulerOptions
}

// NewScheduler checks opts and returns a Scheduler; the flags named are gantry server's.
func NewScheduler(opts SchedulerOptions) (*Scheduler, error) {
	var errs []error
	if opts.Interval <= 0 {
		errs = append(errs, fmt.Errorf("--etcd-snapshot-interval: %s must be positive", opts.Interval))
	}
	if opts.Retention < 1 {
		errs = append(errs, fmt.Errorf("--etcd-snapshot-retention: %d must be at least 1", opts.Retention))
	}
	if opts.Dir == "" {
		errs = append(errs, errors.New("--etcd-snapshot-dir: must not be empty"))
	}
	if opts.Saver == nil {
		errs = append(errs, errors.New("etcd snapshots: no saver"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{opts: opts}, nil
}

// FirstDue is when the first snapshot after a start is due: one interval after the newest
// scheduled snapshot, so restarts do not postpone snapshots forever, but not sooner than
// min(interval, a minute) after the start.
func FirstDue(start, newest time.Time, interval time.Duration) time.Time {
	earliest := start.Add(min(interval, maxFirstDelay))
	if newest.IsZero() {
		return earliest
	}
	due := newest.Add(interval)
	if due.Before(earliest) {
		return earliest
	}
	return due
}

// Start takes snapshots until ctx ends.
func (s *Scheduler) Start(ctx context.Context) error {
	o := s.opts
	var newest time.Time
	if all, err := List(o.Dir); err != nil {
		o.Logger.Warn("etcd snapshots: reading the snapshot dir; taking the first snapshot as if it were empty", "err", err)
	} else {
		for _, sn := range all {
			if sn.Name == Scheduled {
				newest = sn.Time
				break
			}
		}
	}
	due := FirstDue(o.Clock.Now(), newest, o.Interval)
	o.Logger.Info("etcd snapshots scheduled", "dir", o.Dir, "interval", o.Interval, "retention", o.Retention, "next", due.Round(time.Second))
	for {
		t := o.Clock.NewTimer(due.Sub(o.Clock.Now()))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
		s.tick(ctx)
		due = o.Clock.Now().Add(o.Interval)
	}
}

// tick takes one snapshot and prunes; failures are logged.
func (s *Scheduler) tick(ctx context.Context) {
	o := s.opts
	began := o.Clock.Now()
	saveCtx, cancel := context.WithTimeout(ctx, saveTimeout)
	defer cancel()
	sn, st, err := o.Saver.Save(saveCtx, o.Dir, Scheduled, began)
	if err != nil {
		if ctx.Err() == nil {
			o.Logger.Error("etcd snapshot failed; trying again at the next tick", "err", err, "next", began.Add(o.Interval).Round(time.Second))
		}
		return
	}
	o.Logger.Info("etcd snapshot saved", "file", sn.Path, "size", sn.Size, "revision", st.Revision, "keys", st.Keys,
		"elapsed", o.Clock.Since(began).Round(time.Millisecond))
	removed, err := Prune(o.Dir, Scheduled, o.Retention)
	for _, r := range removed {
		o.Logger.Info("etcd snapshot pruned", "file", r.Path)
	}
	if err != nil {
		o.Logger.Error("etcd snapshots: pruning", "err", err)
	}
}
