package main

import (
	"fmt"
	"math"
	"time"
)

// phase is a stretch of a load shape: the requests in flight go linearly from from to to over
// d (stay put when they are equal).
type phase struct {
	d        time.Duration
	from, to int
}

// shape is a load over time, as requests in flight at each moment.
type shape struct {
	name   string
	about  string // for the plot's title and the summary
	phases []phase
}

// duration is the whole shape's length.
func (s shape) duration() time.Duration {
	var d time.Duration
	for _, p := range s.phases {
		d += p.d
	}
	return d
}

// concurrency is how many requests are in flight t into the shape; 0 past its end.
func (s shape) concurrency(t time.Duration) int {
	for _, p := range s.phases {
		if t < p.d {
			if p.from == p.to || p.d <= 0 {
				return p.to
			}
			return p.from + int(math.Round(float64(p.to-p.from)*float64(t)/float64(p.d)))
		}
		t -= p.d
	}
	return 0
}

// peak is the most requests the shape holds in flight at once.
func (s shape) peak() int {
	n := 0
	for _, p := range s.phases {
		n = max(n, p.from, p.to)
	}
	return n
}

// asks is the first moment the shape holds more than (pods-1)×target requests in flight, so
// that it calls for pods pods at target each (to 100 ms); the shape's end when it never does.
func (s shape) asks(pods, target int) time.Duration {
	for t := time.Duration(0); t < s.duration(); t += 100 * time.Millisecond {
		if s.concurrency(t) > (pods-1)*target {
			return t
		}
	}
	return s.duration()
}

// shapeOptions size the three shapes.
type shapeOptions struct {
	concurrency int           // the step's and the ramp's level
	burst       int           // the burst's spike
	base        int           // the burst's level before and after the spike
	hold        time.Duration // how long the step holds, and how long the ramp rises
	spike       time.Duration // how long the burst's spike lasts
	tail        time.Duration // idle time at the end of each shape, to watch the scale fall
}

func (o shapeOptions) validate() error {
	switch {
	case o.concurrency < 1 || o.concurrency > 200:
		return fmt.Errorf("-concurrency %d: want 1 to 200", o.concurrency)
	case o.burst < 1 || o.burst > 200:
		return fmt.Errorf("-burst %d: want 1 to 200", o.burst)
	case o.base < 0 || o.base >= o.burst:
		return fmt.Errorf("-burst-base %d: want 0 up to less than -burst (%d)", o.base, o.burst)
	case o.hold < 5*time.Second || o.hold > 5*time.Minute:
		return fmt.Errorf("-hold %s: want 5s to 5m", o.hold)
	case o.spike < time.Second || o.spike > time.Minute:
		return fmt.Errorf("-spike %s: want 1s to 1m", o.spike)
	case o.tail < 0 || o.tail > 5*time.Minute:
		return fmt.Errorf("-tail %s: want 0 to 5m", o.tail)
	}
	return nil
}

// lead is the idle time before the load, so each plot shows where it starts from.
const lead = 5 * time.Second

// shapes are the step, the ramp and the burst of o, by name.
func shapes(o shapeOptions) map[string]shape {
	c := o.concurrency
	return map[string]shape{
		"step": {name: "step", about: fmt.Sprintf("0 → %d requests in flight at once, held %s", c, o.hold),
			phases: []phase{{lead, 0, 0}, {o.hold, c, c}, {o.tail, 0, 0}}},
		"ramp": {name: "ramp", about: fmt.Sprintf("0 → %d requests in flight over %s, held 10s", c, o.hold),
			phases: []phase{{lead, 0, 0}, {o.hold, 0, c}, {10 * time.Second, c, c}, {o.tail, 0, 0}}},
		"burst": {name: "burst", about: fmt.Sprintf("%d in flight, a %s spike to %d, back to %d", o.base, o.spike, o.burst, o.base),
			phases: []phase{{lead, 0, 0}, {20 * time.Second, o.base, o.base}, {o.spike, o.burst, o.burst}, {20 * time.Second, o.base, o.base}, {o.tail, 0, 0}}},
	}
}
