package metrics

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func sec(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// op is a record (when resize is 0 and avg is false), a resize, or a check of the average.
type op struct {
	at     float64
	v      float64
	resize time.Duration
	check  bool
	empty  bool // with check
}

func rec(at, v float64) op      { return op{at: at, v: v} }
func avg(at, want float64) op   { return op{at: at, v: want, check: true} }
func empty(at float64) op       { return op{at: at, check: true, empty: true} }
func resize(d time.Duration) op { return op{resize: d} }
func recs(from float64, vs ...float64) []op {
	var ops []op
	for i, v := range vs {
		ops = append(ops, rec(from+float64(i), v))
	}
	return ops
}

func TestWindow(t *testing.T) {
	tests := []struct {
		name   string
		window time.Duration
		ops    []op
	}{{
		name:   "empty",
		window: 5 * time.Second,
		ops:    []op{empty(0)},
	}, {
		name:   "a partial window averages the seconds it has",
		window: 5 * time.Second,
		ops:    append(recs(0, 1, 2, 3), avg(2, 2)),
	}, {
		name:   "records in one second add up",
		window: 5 * time.Second,
		ops:    []op{rec(0, 1), rec(0.5, 2), rec(0.999, 3), avg(0.2, 6)},
	}, {
		name:   "the window slides",
		window: 3 * time.Second,
		ops:    append(recs(0, 1, 2, 3, 4, 5), avg(4, 4)),
	}, {
		name:   "a length rounds up to whole seconds",
		window: 2500 * time.Millisecond,
		ops:    append(recs(0, 1, 2, 3, 4, 5), avg(4, 4)),
	}, {
		name:   "a second skipped between records is zero",
		window: 5 * time.Second,
		ops:    []op{rec(0, 4), rec(2, 4), avg(2, 8.0/3)},
	}, {
		name:   "seconds after the last record do not count",
		window: 5 * time.Second,
		ops:    []op{rec(0, 6), avg(3, 6), avg(4, 6), empty(5)},
	}, {
		name:   "records leave the window after the last one",
		window: 5 * time.Second,
		ops:    append(recs(0, 1, 1, 1, 1, 5), avg(4, 1.8), avg(6, 7.0/3), avg(8, 5), empty(9)),
	}, {
		name:   "a record a little late goes into its own second",
		window: 5 * time.Second,
		ops:    []op{rec(5, 4), rec(4, 2), avg(5, 3)},
	}, {
		name:   "a record older than the window is dropped",
		window: 3 * time.Second,
		ops:    []op{rec(5, 4), rec(2, 100), avg(5, 4)},
	}, {
		name:   "after a silent window a new run starts",
		window: 3 * time.Second,
		ops:    []op{rec(0, 9), rec(10, 3), avg(10, 3)},
	}, {
		name:   "shrinking keeps the newest records",
		window: 5 * time.Second,
		ops:    append(recs(0, 1, 2, 3, 4, 5), resize(3*time.Second), avg(4, 4), rec(5, 6), avg(5, 5)),
	}, {
		name:   "growing keeps what there was and fills up",
		window: 3 * time.Second,
		ops:    append(recs(0, 1, 2, 3, 4, 5), resize(6*time.Second), avg(4, 4), rec(5, 6), avg(5, 4.5)),
	}, {
		name:   "resizing to the same length changes nothing",
		window: 3 * time.Second,
		ops:    append(recs(0, 1, 2, 3), resize(3*time.Second), avg(2, 2)),
	}, {
		name:   "resizing an empty window",
		window: 3 * time.Second,
		ops:    []op{resize(10 * time.Second), empty(0), rec(0, 2), avg(0, 2)},
	}, {
		name:   "a window shorter than a second is one second",
		window: 100 * time.Millisecond,
		ops:    []op{rec(0, 3), avg(0, 3), rec(1, 5), avg(1, 5), empty(2)},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWindow(tc.window)
			for i, o := range tc.ops {
				switch {
				case o.resize != 0:
					w.Resize(o.resize)
				case o.check:
					got := struct {
						Empty   bool
						Average float64
					}{w.Empty(sec(o.at)), w.Average(sec(o.at))}
					want := got
					want.Empty, want.Average = o.empty, o.v
					if diff := cmp.Diff(want, got); diff != "" {
						t.Fatalf("op %d at %vs (-want +got):\n%s", i, o.at, diff)
					}
				default:
					w.Record(sec(o.at), o.v)
				}
			}
		})
	}
}

// Once every second of a window is zero, the average is exactly zero, whatever was recorded
// before. (A running total kept by adding and subtracting each record drifted: after the
// activator's and the pods' fractional reports of a burst had left the window, it kept a
// residue of about 1e-19, and the decider's ceil(residue / target) held a revision at one
// pod for minutes.)
func TestWindowAverageOfZerosIsExactlyZero(t *testing.T) {
	// Fractional loads as a burst through the activator gives them: several per second.
	burst := []float64{0.03750583941681313, 0.01945316555295541, 0.012605463347781811,
		0.007894714521119013, 0.011154001464585346, 0.0029434433140382433, 0.1, 0.2, 0.7, 1.3}
	for size := 1; size <= 8; size++ {
		for shift := range burst {
			w := NewWindow(time.Duration(size) * time.Second)
			at := 0.0
			for i := range burst {
				// Two reports in some seconds, as the activator's and a scrape's.
				w.Record(sec(at), burst[(i+shift)%len(burst)])
				if i%3 == 0 {
					w.Record(sec(at+0.5), burst[(i+shift+1)%len(burst)]/3)
				}
				at++
			}
			for range size + 2 {
				w.Record(sec(at), 0)
				at++
			}
			if got := w.Average(sec(at - 1)); got != 0 {
				t.Errorf("window %ds, burst shifted by %d: average %g after a window of zeros, want 0", size, shift, got)
			}
		}
	}
}
