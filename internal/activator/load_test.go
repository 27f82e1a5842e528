package activator

import (
	"math"
	"testing"
	"time"
)

func TestLoadAveragesOverThePeriod(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var l load
	if _, _, active := l.take(t0); active {
		t.Fatal("no request ever: want nothing to report")
	}
	l.begin(at(0))   // one request for the whole second
	l.begin(at(500)) // a second one for its second half
	l.end(at(750))   // … which ends at 750 ms
	c, rps, active := l.take(at(1000))
	// 1 × 1 s + 1 × 0.25 s over 1 s.
	if !active || math.Abs(c-1.25) > 1e-9 || math.Abs(rps-2) > 1e-9 {
		t.Fatalf("first second: concurrency %v rps %v active %v, want 1.25, 2, true", c, rps, active)
	}
	// The long request is still in flight: the next second counts it, with no new request.
	c, rps, active = l.take(at(2000))
	if !active || math.Abs(c-1) > 1e-9 || rps != 0 {
		t.Fatalf("second second: concurrency %v rps %v active %v, want 1, 0, true", c, rps, active)
	}
	l.end(at(2000))
	if _, _, active := l.take(at(3000)); active {
		t.Fatal("a quiet second: want nothing to report")
	}
}
