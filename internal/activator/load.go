package activator

import (
	"sync"
	"time"
)

// load measures the requests the activator holds or sends for one revision: their
// time-weighted average concurrency and their count over a period, which the autoscaler
// takes every second while the activator is in the revision's path.
type load struct {
	mu       sync.Mutex
	inFlight int64
	// since is the start of the period; last the last change of inFlight.
	since, last time.Time
	// area is the integral of inFlight over the period, in request-seconds.
	area     float64
	requests int64
}

// begin counts a request arriving at now.
func (l *load) begin(now time.Time) {
	l.mu.Lock()
	l.advanceLocked(now)
	l.inFlight++
	l.requests++
	l.mu.Unlock()
}

// end counts a request leaving at now.
func (l *load) end(now time.Time) {
	l.mu.Lock()
	l.advanceLocked(now)
	l.inFlight--
	l.mu.Unlock()
}

func (l *load) advanceLocked(now time.Time) {
	if l.since.IsZero() {
		l.since, l.last = now, now
		return
	}
	if now.After(l.last) {
		l.area += float64(l.inFlight) * now.Sub(l.last).Seconds()
		l.last = now
	}
}

// take ends the period at now and returns its average concurrency and request rate; active
// is false when the period saw no request at all, so there is nothing to report.
func (l *load) take(now time.Time) (concurrency, rps float64, active bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.since.IsZero() {
		return 0, 0, false
	}
	l.advanceLocked(now)
	period := now.Sub(l.since).Seconds()
	active = l.requests > 0 || l.inFlight > 0
	if period > 0 {
		concurrency, rps = l.area/period, float64(l.requests)/period
	}
	l.since, l.last, l.area, l.requests = now, now, 0, 0
	return concurrency, rps, active
}
