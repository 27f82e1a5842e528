package queue

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// timeoutBody is the body of the 504 of a request whose response did not start in time.
const timeoutBody = "queue-proxy: request timed out before the response started\n"

// The causes a request's context ends with when one of its timeouts passes.
var (
	ErrTimeout              = errors.New("request timeout")
	ErrResponseStartTimeout = errors.New("response start timeout")
	ErrIdleTimeout          = errors.New("idle timeout")
)

// timeoutHandler bounds a request three ways: its whole duration (total), the time until the
// first byte of the response (responseStart), and the time without a byte written (idle). When
// one passes, the inner handler's context ends with the cause (ErrTimeout, …) and its later
// writes are dropped; once it has returned, the client gets 504 if nothing was written yet,
// else the response is cut (the connection is aborted, so the client sees a truncated
// response, never a complete one). A zero duration does not bound.
//
// Unlike http.TimeoutHandler it runs the inner handler on the request's own goroutine, with
// one timer per request and no buffering: the inner handler must return soon after its
// context ends, as the proxy does.
type timeoutHandler struct {
	next                       http.Handler
	total, responseStart, idle time.Duration
	body                       string
}

func newTimeoutHandler(next http.Handler, total, responseStart, idle time.Duration) http.Handler {
	if total <= 0 && responseStart <= 0 && idle <= 0 {
		return next
	}
	if total > 0 && responseStart >= total {
		responseStart = 0 // the total timeout comes first anyway
	}
	return &timeoutHandler{
		next: next, total: total, responseStart: responseStart, idle: idle,
		body: timeoutBody,
	}
}

func (h *timeoutHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	now := time.Now()
	tw := &timeoutWriter{w: w, h: h, cancel: cancel, start: now}
	tw.mu.Lock()
	tw.timer = time.AfterFunc(tw.untilNextDeadline(now), tw.check)
	tw.mu.Unlock()
	defer tw.timer.Stop()

	h.next.ServeHTTP(tw, r.WithContext(ctx))

	tw.mu.Lock()
	tw.finished = true
	expired, started, hijacked := tw.expired, tw.started, tw.hijacked
	tw.mu.Unlock()
	switch {
	case expired == nil || hijacked:
		// In time, or a hijacked connection that the proxy closed when ctx ended.
	case !started:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusGatewayTimeout)
		_, _ = io.WriteString(w, h.body)
	default:
		// The response started: the only honest end is a cut, so the client cannot take a
		// truncated body for a whole one.
		panic(http.ErrAbortHandler)
	}
}

// timeoutWriter passes writes through until a timeout passes, and remembers whether the
// response started and when a byte was last written.
type timeoutWriter struct {
	w      http.ResponseWriter
	h      *timeoutHandler
	cancel context.CancelCauseFunc
	start  time.Time

	lastWrite atomic.Int64 // nanoseconds from start to the last write; 0 before the first

	mu       sync.Mutex
	timer    *time.Timer
	started  bool  // a status (not 1xx) or a byte was written, or the connection hijacked
	hijacked bool  // the connection is no longer HTTP's
	expired  error // the timeout that passed, nil while in time
	finished bool  // the inner handler returned
}

// untilNextDeadline is the time from now to the earliest deadline still ahead; the caller
// holds mu.
func (tw *timeoutWriter) untilNextDeadline(now time.Time) time.Duration {
	next := time.Duration(1<<63 - 1)
	if tw.h.total > 0 {
		next = min(next, tw.start.Add(tw.h.total).Sub(now))
	}
	if !tw.started && tw.h.responseStart > 0 {
		next = min(next, tw.start.Add(tw.h.responseStart).Sub(now))
	}
	if !tw.hijacked && tw.h.idle > 0 {
		next = min(next, tw.idleDeadline().Sub(now))
	}
	return next
}

func (tw *timeoutWriter) idleDeadline() time.Time {
	return tw.start.Add(time.Duration(tw.lastWrite.Load()) + tw.h.idle)
}

// check runs on the timer: it ends the request if a deadline passed, else waits for the next.
func (tw *timeoutWriter) check() {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.finished || tw.expired != nil {
		return
	}
	now := time.Now()
	var cause error
	switch {
	case tw.h.total > 0 && !now.Before(tw.start.Add(tw.h.total)):
		cause = ErrTimeout
	case !tw.started && tw.h.responseStart > 0 && !now.Before(tw.start.Add(tw.h.responseStart)):
		cause = ErrResponseStartTimeout
	case !tw.hijacked && tw.h.idle > 0 && !now.Before(tw.idleDeadline()):
		cause = ErrIdleTimeout
	}
	if cause == nil {
		tw.timer.Reset(tw.untilNextDeadline(now))
		return
	}
	tw.expired = cause
	tw.cancel(cause)
}

// admit reports whether a write may go through, and marks the response started if so.
func (tw *timeoutWriter) admit(starts bool) bool {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.expired != nil {
		return false
	}
	if starts {
		tw.started = true
	}
	return true
}

func (tw *timeoutWriter) wrote() {
	if tw.h.idle > 0 {
		tw.lastWrite.Store(int64(time.Since(tw.start)))
	}
}

func (tw *timeoutWriter) Header() http.Header { return tw.w.Header() }

func (tw *timeoutWriter) WriteHeader(code int) {
	// An informational status (100 Continue, 103 Early Hints) does not start the response: a
	// 504 may still follow it. 101 Switching Protocols does.
	if !tw.admit(code >= 200 || code == http.StatusSwitchingProtocols) {
		return
	}
	tw.w.WriteHeader(code)
	tw.wrote()
}

func (tw *timeoutWriter) Write(p []byte) (int, error) {
	if !tw.admit(true) {
		return 0, http.ErrHandlerTimeout
	}
	n, err := tw.w.Write(p)
	tw.wrote()
	return n, err
}

// FlushError flushes what was written; after a timeout it reports http.ErrHandlerTimeout.
func (tw *timeoutWriter) FlushError() error {
	if !tw.admit(false) {
		return http.ErrHandlerTimeout
	}
	return flush(tw.w)
}

// Flush is FlushError for callers that take an http.Flusher.
func (tw *timeoutWriter) Flush() { _ = tw.FlushError() }

// Hijack hands the connection over (a websocket upgrade); the total timeout still ends it.
func (tw *timeoutWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !tw.admit(true) {
		return nil, nil, http.ErrHandlerTimeout
	}
	c, rw, err := http.NewResponseController(tw.w).Hijack()
	if err == nil {
		tw.mu.Lock()
		tw.hijacked = true
		tw.mu.Unlock()
	}
	return c, rw, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (tw *timeoutWriter) Unwrap() http.ResponseWriter { return tw.w }

// flush flushes w through the first of its layers that can.
func flush(w http.ResponseWriter) error {
	switch f := w.(type) {
	case interface{ FlushError() error }:
		return f.FlushError()
	case http.Flusher:
		f.Flush()
		return nil
	}
	return http.NewResponseController(w).Flush()
}
