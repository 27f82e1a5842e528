// Package lifecycle runs the parts of gantry server as one group. Every part has one shape,
// the shape of controller-runtime's manager.Runnable: Start(ctx) runs the part until ctx ends
// and then returns nil once it has stopped, or returns an error when it fails. A part that
// needs time to come up also says when it is ready. The group starts the parts in order, each
// once the one before is ready; it stops them in reverse order within the caller's deadline;
// and a part that ends on its own fails the whole group, with its name in the error.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Part is one piece of the server.
type Part interface {
	// Start runs the part until ctx ends. It returns nil after a clean stop, an error when
	// the part cannot start or fails while running.
	Start(ctx context.Context) error
}

// Readier is a Part that needs time to come up: Ready is closed once it serves.
type Readier interface {
	Ready() <-chan struct{}
}

// ErrStopped is the failure of a part that returned nil before it was asked to stop.
var ErrStopped = errors.New("stopped on its own")

// Group runs parts. Add them, then Start once and Stop once.
type Group struct {
	log   *slog.Logger
	parts []*running

	mu       sync.Mutex
	stopping bool
	failOnce sync.Once
	failed   chan struct{}
	failErr  error
}

type running struct {
	name   string
	part   Part
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// NewGroup returns an empty group that logs to log (nil: nowhere).
func NewGroup(log *slog.Logger) *Group {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Group{log: log, failed: make(chan struct{})}
}

// Add registers part under name; parts start in the order they are added. Add after Start
// panics: the group's order is fixed once it runs.
func (g *Group) Add(name string, part Part) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range g.parts {
		if r.done != nil {
			panic("lifecycle: Add after Start")
		}
	}
	g.parts = append(g.parts, &running{name: name, part: part})
}

// startFailureStopTimeout bounds the stop of the parts already started when a later one
// cannot start.
const startFailureStopTimeout = time.Minute

// Start starts every part in order and returns once the last one is ready. ctx bounds the
// start only; the parts run until Stop. When a part fails to start, the parts already
// started are stopped (within a minute, even when ctx has ended), and the error names the
// part.
func (g *Group) Start(ctx context.Context) error {
	for _, r := range g.parts {
		if err := g.start(ctx, r); err != nil {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startFailureStopTimeout)
			defer cancel()
			return errors.Join(err, g.Stop(stopCtx))
		}
	}
	return nil
}

func (g *Group) start(ctx context.Context, r *running) error {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		r.err = r.part.Start(runCtx)
		g.mu.Lock()
		stopping := g.stopping
		g.mu.Unlock()
		if !stopping {
			err := r.err
			if err == nil {
				err = ErrStopped
			}
			g.fail(fmt.Errorf("%s: %w", r.name, err))
		}
	}()
	var ready <-chan struct{}
	if rd, ok := r.part.(Readier); ok {
		ready = rd.Ready()
	} else {
		c := make(chan struct{})
		close(c)
		ready = c
	}
	select {
	case <-ready:
		g.log.Debug("part ready", "part", r.name)
		return nil
	case <-r.done:
		err := r.err
		if err == nil {
			err = ErrStopped
		}
		return fmt.Errorf("%s: %w", r.name, err)
	case <-ctx.Done():
		return fmt.Errorf("%s: not ready: %w", r.name, context.Cause(ctx))
	}
}

func (g *Group) fail(err error) {
	g.failOnce.Do(func() {
		g.failErr = err
		close(g.failed)
	})
}

// Failed is closed when a part ends on its own; Err then says which and why.
func (g *Group) Failed() <-chan struct{} { return g.failed }

// Err is the first part's failure, or nil.
func (g *Group) Err() error {
	select {
	case <-g.failed:
		return g.failErr
	default:
		return nil
	}
}

// Stop stops the started parts in reverse order: each is cancelled and awaited before the one
// started before it. ctx bounds the whole; a part that has not stopped by then is named in the
// error, and the parts before it are still cancelled (not awaited) so none runs on unasked.
func (g *Group) Stop(ctx context.Context) error {
	g.mu.Lock()
	g.stopping = true
	g.mu.Unlock()
	var errs []error
	for i := len(g.parts) - 1; i >= 0; i-- {
		r := g.parts[i]
		if r.done == nil {
			continue
		}
		r.cancel()
		if ctx.Err() != nil {
			continue
		}
		began := time.Now()
		select {
		case <-r.done:
			g.log.Debug("part stopped", "part", r.name, "elapsed", time.Since(began).Round(time.Millisecond))
			if r.err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", r.name, r.err))
			}
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("%s did not stop in time: %w", r.name, context.Cause(ctx)))
		}
	}
	return errors.Join(errs...)
}
