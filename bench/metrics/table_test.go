package main

import (
	"strings"
	"testing"
	"time"

	"github.com/gantry-run/gantry/bench/internal/load"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{[]time.Duration{3, 1, 2}, 2},
		{[]time.Duration{4, 1, 3, 2}, 2}, // (2+3)/2, truncated
		{[]time.Duration{10, 20}, 15},
	} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestDiff(t *testing.T) {
	for _, tc := range []struct {
		on, off time.Duration
		want    string
	}{
		{2 * time.Millisecond, 2 * time.Millisecond, "+0.00 ms (+0.0 %)"},
		{2020 * time.Microsecond, 2 * time.Millisecond, "+0.02 ms (+1.0 %)"},
		{1900 * time.Microsecond, 2 * time.Millisecond, "-0.10 ms (-5.0 %)"},
		{time.Millisecond, 0, "+1.00 ms"},
	} {
		if got := diff(tc.on, tc.off); got != tc.want {
			t.Errorf("diff(%v, %v) = %q, want %q", tc.on, tc.off, got, tc.want)
		}
	}
}

// TestTable: two rounds, their medians and the pooled percentiles.
func TestTable(t *testing.T) {
	res := func(ms ...int) load.Result {
		var r load.Result
		for _, m := range ms {
			r.Latencies = append(r.Latencies, time.Duration(m)*time.Millisecond)
		}
		return r
	}
	got := table([]round{{on: res(1, 2, 3), off: res(1, 1, 2)}, {on: res(2, 4, 6), off: res(1, 2, 4)}}, "metrics on", "metrics off")
	for _, want := range []string{
		"A: metrics on, B: metrics off",
		"| 1 | 2.00 ms | 3.00 ms | 1.00 ms | 2.00 ms | 0/0 |",
		"| 2 | 4.00 ms | 6.00 ms | 2.00 ms | 4.00 ms | 0/0 |",
		"| median of rounds | 3.00 ms | 4.50 ms | 1.50 ms | 3.00 ms | |",
		"| spread of rounds (min–max) | 2.00 ms–4.00 ms | 3.00 ms–6.00 ms | 1.00 ms–2.00 ms | 2.00 ms–4.00 ms | |",
		"| all requests pooled (6/6) | 3.00 ms | 6.00 ms | 2.00 ms | 4.00 ms | 0/0 |",
		"p99 +2.00 ms (+50.0 %) (pooled)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}
