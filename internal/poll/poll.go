// Package poll is the one way tests and benchmarks wait for a condition: they retry a check
// until it holds, with a short interval that grows, and fail naming what they waited for and
// why the last check said no.
package poll

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Intervals between checks: the first is short, so fast conditions are seen at once; they
// double up to the longest, so slow ones do not spin.
const (
	firstInterval = 5 * time.Millisecond
	maxInterval   = 250 * time.Millisecond
)

// stopError ends a wait at once.
type stopError struct{ err error }

func (s stopError) Error() string { return s.err.Error() }
func (s stopError) Unwrap() error { return s.err }

// Stop wraps err so that Until fails at once instead of retrying.
func Stop(err error) error { return stopError{err} }

// Until calls cond until it returns true, then returns. A non-nil error from cond says why it
// is not done yet and is retried, unless it was made with Stop; when timeout passes (or a
// Stop error comes), tb fails naming what and the last error. ctx passed to cond ends with the
// timeout.
func Until(tb testing.TB, what string, timeout time.Duration, cond func(ctx context.Context) (bool, error)) {
	tb.Helper()
	if err := Wait(context.Background(), timeout, cond); err != nil {
		tb.Fatalf("waiting for %s: %v", what, err)
	}
}

// Wait is Until for code without a testing.TB (benchmark runners): it returns the error
// Until would fail with.
func Wait(ctx context.Context, timeout time.Duration, cond func(ctx context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	interval := firstInterval
	var last error
	for {
		done, err := cond(ctx)
		if done {
			return nil
		}
		if stop := (stopError{}); errors.As(err, &stop) {
			return stop.err
		}
		if err != nil {
			last = err
		}
		timer := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			if last != nil {
				return errors.Join(errors.New("not done within "+timeout.String()), last)
			}
			return errors.New("not done within " + timeout.String())
		case <-timer.C:
		}
		interval = min(2*interval, maxInterval)
	}
}
