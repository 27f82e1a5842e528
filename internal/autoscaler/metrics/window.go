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
type Window struct {
	buckets []float64 // a ring: second s is at s mod len
	total   float64   // the sum of buckets
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
		w.total = 0
		w.first, w.last, w.written = sec, sec, true
	case sec > w.last:
		// Seconds skipped since the last record are zero; their slots still hold a window ago.
		for s := w.last + 1; s <= sec; s++ {
			i := w.slot(s)
			w.total -= w.buckets[i]
			w.buckets[i] = 0
		}
		w.last = sec
	case sec <= w.last-w.size():
		return
	case sec < w.first:
		w.first = sec
	}
	w.buckets[w.slot(sec)] += v
	w.total += v
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
	sec := now.Unix()
	sum, stale := w.total, int64(0)
	if sec > w.last {
		// Slots after the last record hold seconds from before the window.
		stale = sec - w.last
		for s := w.last + 1; s <= sec; s++ {
			sum -= w.buckets[w.slot(s)]
		}
	}
	seconds := min(w.last-w.first+1, w.size()-stale)
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
		v := old.buckets[old.slot(s)]
		w.buckets[w.slot(s)] = v
		w.total += v
	}
}
