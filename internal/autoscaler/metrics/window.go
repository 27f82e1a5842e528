package metrics

import (
	"math"
	"time"
)

// Window averages values recorded per second over the last whole seconds of its length.
// Values recorded in the same second add up, so a second's bucket is the sum of every report
// for that second (the pods' and the activator's).
//
// The average covers the seconds from the first record (when that is less than a window ago)
// to the last one: a second skipped between two records counts as zero, but the seconds after
// the last record do not count at all, so a revision nobody reports on keeps its last average
// until those records leave the window. A Window is not safe for concurrent use.
//
// The average is summed from the buckets each time, not kept as a running total: adding
// and later subtracting fractional records leaves a floating-point residue (about 1e-19)
// once they have all left, and a decider that rounds demand up (ceil(load / target)) reads
// any positive residue as one pod's worth of load, so a revision would never reach zero.
// A bucket is zeroed when its second comes round again, so a window of zero records sums
// to exactly zero.
type Window struct {
	buckets []float64 // a ring: second s is at s mod len
	// first and last are the first second of the current run of records and the last second
	// recorded; written is false until the first record.
	first, last int64
	written     bool
}

// NewWindow returns an empty window of length d, rounded up to whole seconds (at least one).
func NewWindow(d time.Duration) *Window {
	return &Window{buckets: make([]float64, bucketCount(d))}
}

func bucketCount(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

func (w *Window) size() int64 { return int64(len(w.buckets)) }

func (w *Window) slot(sec int64) int {
	n := w.size()
	return int((sec%n + n) % n)
}

// Record adds v to the second of now. A second older than the window before the last record
// is dropped.
func (w *Window) Record(now time.Time, v float64) {
	sec := now.Unix()
	switch {
	case !w.written || sec-w.last >= w.size():
		// Nothing recorded within a window: start a new run.
		clear(w.buckets)
		w.first, w.last, w.written = sec, sec, true
	case sec > w.last:
		// Seconds skipped since the last record are zero; their slots still hold a window ago.
		for s := w.last + 1; s <= sec; s++ {
			w.buckets[w.slot(s)] = 0
		}
		w.last = sec
	case sec <= w.last-w.size():
		return
	case sec < w.first:
		w.first = sec
	}
	w.buckets[w.slot(sec)] += v
}

// Empty reports whether nothing was recorded within the window before now.
func (w *Window) Empty(now time.Time) bool {
	return !w.written || now.Unix()-w.last >= w.size()
}

// Average is the mean per second over the window at now (see Window); 0 when Empty.
func (w *Window) Average(now time.Time) float64 {
	if w.Empty(now) {
		return 0
	}
	// The seconds averaged end at the last record; the slots after it (up to now) hold
	// seconds from before the window.
	stale := max(now.Unix()-w.last, 0)
	seconds := min(w.last-w.first+1, w.size()-stale)
	sum := 0.0
	for s := w.last - seconds + 1; s <= w.last; s++ {
		sum += w.buckets[w.slot(s)]
	}
	return sum / float64(seconds)
}

// Resize changes the window's length to d, keeping the records that fit.
func (w *Window) Resize(d time.Duration) {
	n := bucketCount(d)
	if n == len(w.buckets) {
		return
	}
	old := *w
	*w = Window{buckets: make([]float64, n), first: old.first, last: old.last, written: old.written}
	if !w.written {
		return
	}
	keep := min(int64(n), int64(len(old.buckets)))
	w.first = max(w.first, w.last-keep+1)
	for s := w.last - keep + 1; s <= w.last; s++ {
		w.buckets[w.slot(s)] = old.buckets[old.slot(s)]
	}
}
