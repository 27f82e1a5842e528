package scaling

import "time"

// maxWindow answers the largest value recorded during the last span of time. It keeps only
// the values that can still be the answer: each is larger than every later one, so the
// oldest kept is the largest, and a record drops the smaller values before it.
type maxWindow struct {
	span time.Duration
	kept []timedScale // oldest first, values strictly decreasing
}

type timedScale struct {
	at    time.Time
	scale int32
}

func newMaxWindow(span time.Duration) *maxWindow {
	return &maxWindow{span: span}
}

// record adds scale at now and returns the largest value recorded in (now-span, now].
func (w *maxWindow) record(now time.Time, scale int32) int32 {
	n := len(w.kept)
	for n > 0 && w.kept[n-1].scale <= scale {
		n--
	}
	w.kept = append(w.kept[:n], timedScale{at: now, scale: scale})
	drop := 0
	for now.Sub(w.kept[drop].at) >= w.span {
		drop++
	}
	if drop > 0 {
		w.kept = append(w.kept[:0], w.kept[drop:]...)
	}
	return w.kept[0].scale
}
