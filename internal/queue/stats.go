package queue

import (
	"sync"
	"time"
)

// RequestStats accumulates what the autoscaler needs over one reporting window: concurrency
// weighted by time, its peak, and arrivals; each split into all requests and the proxied ones
// (those the activator forwarded). Time is passed in, so tests move it by hand.
type RequestStats struct {
	mu sync.Mutex

	// The state now; kept across windows.
	concurrency, proxiedConcurrency int
	lastChange                      time.Time

	// The window so far; reset by Report.
	requests, proxiedRequests int
	concurrencySeconds        float64 // ∫ concurrency dt
	proxiedSeconds            float64 // ∫ proxied concurrency dt
	windowSeconds             float64
	peak                      int
}

// Report is one window of RequestStats.
type Report struct {
	// AverageConcurrency is the time-weighted mean of requests in flight: two requests of
	// 500 ms each in a 1 s window average 1.
	AverageConcurrency float64
	// AverageProxiedConcurrency is the same for the requests that came through the activator.
	AverageProxiedConcurrency float64
	// PeakConcurrency is the most requests in flight at once during the window.
	PeakConcurrency int
	// RequestCount and ProxiedRequestCount are the requests that arrived during the window.
	RequestCount, ProxiedRequestCount int
}

// NewRequestStats starts the first window at now.
func NewRequestStats(now time.Time) *RequestStats {
	return &RequestStats{lastChange: now}
}

// advance integrates the concurrency since the last change; a clock that went backwards
// adds nothing.
func (s *RequestStats) advance(now time.Time) {
	if d := now.Sub(s.lastChange); d > 0 {
		secs := d.Seconds()
		s.windowSeconds += secs
		s.concurrencySeconds += float64(s.concurrency) * secs
		s.proxiedSeconds += float64(s.proxiedConcurrency) * secs
		s.lastChange = now
	}
}

// In records a request arriving at now.
func (s *RequestStats) In(now time.Time, proxied bool) {
	s.mu.Lock()
	s.advance(now)
	s.concurrency++
	s.requests++
	if proxied {
		s.proxiedConcurrency++
		s.proxiedRequests++
	}
	s.peak = max(s.peak, s.concurrency)
	s.mu.Unlock()
}

// Out records a request that arrived through In finishing at now.
func (s *RequestStats) Out(now time.Time, proxied bool) {
	s.mu.Lock()
	s.advance(now)
	s.concurrency--
	if proxied {
		s.proxiedConcurrency--
	}
	s.mu.Unlock()
}

// Report closes the window at now and starts the next one.
func (s *RequestStats) Report(now time.Time) Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance(now)
	r := Report{
		PeakConcurrency:     s.peak,
		RequestCount:        s.requests,
		ProxiedRequestCount: s.proxiedRequests,
	}
	if s.windowSeconds > 0 {
		r.AverageConcurrency = s.concurrencySeconds / s.windowSeconds
		r.AverageProxiedConcurrency = s.proxiedSeconds / s.windowSeconds
	}
	s.requests, s.proxiedRequests = 0, 0
	s.concurrencySeconds, s.proxiedSeconds, s.windowSeconds = 0, 0, 0
	s.peak = s.concurrency
	return r
}
