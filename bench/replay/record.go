package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
)

// request is one request the load sent.
type request struct {
	start time.Duration // since the shape began
	took  time.Duration // to the full answer, or to the failure
	ok    bool          // answered 200
}

// scale is what the cluster said at one moment: -1 where it could not be read.
type scale struct {
	desired int // the PodAutoscaler's status.desiredScale
	ready   int // the Deployment's status.readyReplicas
	panic   int // the autoscaler's panic mode: 1 on, 0 off
}

// second is one second of a replay: the load, the scale and the requests begun in it.
type second struct {
	t                int // seconds since the shape began
	offered          int // requests in flight the shape asked for at the start of the second
	desired, ready   int
	panic            int
	sent, ok, failed int
	p50, p99         time.Duration // of the requests begun in this second that answered 200; 0 when none
}

// perSecond folds the requests, the scale samples (one a second, samples[i] at i s) and the
// shape into n seconds. A request belongs to the second it began in.
func perSecond(sh shape, reqs []request, samples []scale, n int) []second {
	out := make([]second, n)
	took := make([][]time.Duration, n)
	for i := range out {
		out[i] = second{t: i, offered: sh.concurrency(time.Duration(i) * time.Second), desired: -1, ready: -1, panic: -1}
		if i < len(samples) {
			out[i].desired, out[i].ready, out[i].panic = samples[i].desired, samples[i].ready, samples[i].panic
		}
	}
	for _, r := range reqs {
		i := int(r.start / time.Second)
		if i < 0 || i >= n {
			continue
		}
		out[i].sent++
		if r.ok {
			out[i].ok++
			took[i] = append(took[i], r.took)
		} else {
			out[i].failed++
		}
	}
	for i := range out {
		slices.Sort(took[i])
		out[i].p50, out[i].p99 = percentile(took[i], 0.50), percentile(took[i], 0.99)
	}
	return out
}

// percentile of sorted durations, nearest rank; 0 for none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// summary is one shape's line of the results table.
type summary struct {
	shape                string
	want                 int           // pods the peak calls for, within max-scale
	toDesired, toReady   time.Duration // from when the load calls for want pods to want pods desired, ready; -1 never
	maxDesired, maxReady int
	panicSeconds         int // seconds read in panic mode
	sent, ok, failed     int
	p50, p99             time.Duration // over the run, of the requests that answered 200
}

// summarize reads a replay's seconds. target is the requests in flight one pod is meant to
// carry; maxScale caps the pods the peak calls for (0: no cap).
func summarize(sh shape, secs []second, reqs []request, target, maxScale int) summary {
	s := summary{shape: sh.name, want: (sh.peak() + target - 1) / target, toDesired: -1, toReady: -1}
	if maxScale > 0 {
		s.want = min(s.want, maxScale)
	}
	from := sh.asks(s.want, target)
	for _, sec := range secs {
		// The scale of second t was read at t s; a level counts as reached at the first
		// reading at or after the call (so up to a second late).
		at := time.Duration(sec.t)*time.Second - from
		if at >= 0 && s.toDesired < 0 && sec.desired >= s.want {
			s.toDesired = at
		}
		if at >= 0 && s.toReady < 0 && sec.ready >= s.want {
			s.toReady = at
		}
		s.maxDesired, s.maxReady = max(s.maxDesired, sec.desired), max(s.maxReady, sec.ready)
		if sec.panic == 1 {
			s.panicSeconds++
		}
	}
	var took []time.Duration
	for _, r := range reqs {
		s.sent++
		if r.ok {
			s.ok++
			took = append(took, r.took)
		} else {
			s.failed++
		}
	}
	slices.Sort(took)
	s.p50, s.p99 = percentile(took, 0.50), percentile(took, 0.99)
	return s
}

// csvHeader names writeCSV's columns.
var csvHeader = []string{"shape", "second", "offered_in_flight", "desired_pods", "ready_pods", "panic", "sent", "ok", "failed", "p50_ms", "p99_ms"}

// writeCSV writes the seconds of each shape, in the order given, under one header.
func writeCSV(w io.Writer, order []string, runs map[string][]second) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	ms := func(d time.Duration) string {
		if d == 0 {
			return ""
		}
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64)
	}
	count := func(n int) string {
		if n < 0 {
			return ""
		}
		return strconv.Itoa(n)
	}
	for _, name := range order {
		for _, s := range runs[name] {
			if err := cw.Write([]string{name, strconv.Itoa(s.t), strconv.Itoa(s.offered), count(s.desired), count(s.ready), count(s.panic),
				strconv.Itoa(s.sent), strconv.Itoa(s.ok), strconv.Itoa(s.failed), ms(s.p50), ms(s.p99)}); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// writeTable writes the summaries as a Markdown table, ready for docs/benchmarks.md.
func writeTable(w io.Writer, sums []summary) error {
	dur := func(d time.Duration) string {
		if d < 0 {
			return "never"
		}
		return fmt.Sprintf("%d s", int(d.Round(time.Second)/time.Second))
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
	if _, err := fmt.Fprintln(w, "| shape | pods the peak calls for | from that call to as many desired | … ready | max desired | max ready | seconds in panic | requests | failed | p50 | p99 |\n|---|---|---|---|---|---|---|---|---|---|---|"); err != nil {
		return err
	}
	for _, s := range sums {
		if _, err := fmt.Fprintf(w, "| %s | %d | %s | %s | %d | %d | %d | %d | %d | %s | %s |\n", s.shape, s.want, dur(s.toDesired), dur(s.toReady),
			s.maxDesired, s.maxReady, s.panicSeconds, s.sent, s.failed, ms(s.p50), ms(s.p99)); err != nil {
			return err
		}
	}
	return nil
}
