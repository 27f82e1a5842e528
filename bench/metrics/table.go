package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gantry-run/gantry/bench/internal/load"
)

// round is one round's load of side A (on: the server with metrics) and of side B (off: the
// one without).
type round struct{ on, off load.Result }

// table is the rounds as a Markdown table: each round's p50 and p99 on both sides (named a
// and b), the rounds' medians and spread, the percentiles of all the rounds' requests pooled,
// and the difference a − b of those.
func table(rounds []round, a, b string) string {
	var t strings.Builder
	fmt.Fprintf(&t, "A: %s, B: %s\n\n", a, b)
	t.WriteString("| round | A p50 | A p99 | B p50 | B p99 | errors A/B |\n|---|---|---|---|---|---|\n")
	var on, off load.Result
	var p50on, p99on, p50off, p99off []time.Duration
	for i, r := range rounds {
		fmt.Fprintf(&t, "| %d | %s | %s | %s | %s | %d/%d |\n", i+1,
			ms(r.on.Percentile(.5)), ms(r.on.Percentile(.99)), ms(r.off.Percentile(.5)), ms(r.off.Percentile(.99)), r.on.Errors, r.off.Errors)
		on.Latencies, on.Errors = append(on.Latencies, r.on.Latencies...), on.Errors+r.on.Errors
		off.Latencies, off.Errors = append(off.Latencies, r.off.Latencies...), off.Errors+r.off.Errors
		p50on, p99on = append(p50on, r.on.Percentile(.5)), append(p99on, r.on.Percentile(.99))
		p50off, p99off = append(p50off, r.off.Percentile(.5)), append(p99off, r.off.Percentile(.99))
	}
	fmt.Fprintf(&t, "| median of rounds | %s | %s | %s | %s | |\n", ms(median(p50on)), ms(median(p99on)), ms(median(p50off)), ms(median(p99off)))
	fmt.Fprintf(&t, "| spread of rounds (min–max) | %s | %s | %s | %s | |\n", spread(p50on), spread(p99on), spread(p50off), spread(p99off))
	fmt.Fprintf(&t, "| all requests pooled (%d/%d) | %s | %s | %s | %s | %d/%d |\n", len(on.Latencies), len(off.Latencies),
		ms(on.Percentile(.5)), ms(on.Percentile(.99)), ms(off.Percentile(.5)), ms(off.Percentile(.99)), on.Errors, off.Errors)
	fmt.Fprintf(&t, "\nA − B: p50 %s, p99 %s (pooled); p50 %s, p99 %s (medians of rounds)\n",
		diff(on.Percentile(.5), off.Percentile(.5)), diff(on.Percentile(.99), off.Percentile(.99)),
		diff(median(p50on), median(p50off)), diff(median(p99on), median(p99off)))
	return t.String()
}

// median is the middle of ds (the mean of the middle two of an even count).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "–"
	}
	return fmt.Sprintf("%s–%s", ms(slices.Min(ds)), ms(slices.Max(ds)))
}

// diff is on − off, in milliseconds and in percent of off.
func diff(on, off time.Duration) string {
	d := on - off
	if off == 0 {
		return fmt.Sprintf("%+.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%+.2f ms (%+.1f %%)", float64(d)/float64(time.Millisecond), 100*float64(d)/float64(off))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
