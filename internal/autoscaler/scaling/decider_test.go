package scaling

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// at is t0 plus secs seconds.
func at(secs float64) time.Time { return t0.Add(time.Duration(secs * float64(time.Second))) }

// base is a revision with target 10 per pod, total 10, and no burst capacity to keep (so the
// activator is in the path only at zero); the rest is Knative's defaults.
func base() Settings {
	s := shipped()
	s.Target, s.Total, s.TargetBurstCapacity = 10, 10, 0
	return s
}

// load is a reachable, initialised revision with ready pods and both window averages.
func load(ready int32, stable, panic float64) Inputs {
	return Inputs{ReadyPods: ready, Reachable: true, HaveMetrics: true, Stable: stable, Panic: panic, Initialized: true}
}

func unreachable(in Inputs) Inputs { in.Reachable = false; return in }

func behindActivatorSince(secs float64, in Inputs) Inputs { in.ActivatorSince = at(secs); return in }

// scale is a valid, initialised result of n pods, with the activator in the path at zero.
func scale(n int32) ScaleResult {
	return ScaleResult{Valid: true, DesiredScale: n, Initialized: true, ActivatorInPath: n == 0}
}

func panicking(r ScaleResult) ScaleResult { r.Panicking = true; return r }

// inactive is a result on the way to zero: the activator takes the route.
func inactive(r ScaleResult) ScaleResult { r.Inactive, r.ActivatorInPath = true, true; return r }

type step struct {
	secs float64 // since t0
	in   Inputs
	want ScaleResult
}

func TestDecider(t *testing.T) {
	tests := []struct {
		name     string
		settings func(*Settings)
		ready    int32 // at NewDecider
		steps    []step
	}{{
		name: "stable window over the target",
		steps: []step{
			{0, load(2, 20, 20), scale(2)},
			{2, load(2, 25, 25), scale(3)},
			{4, load(3, 0.5, 0.5), scale(1)},
		},
	}, {
		name:     "target from utilisation: 7 per pod",
		settings: func(s *Settings) { s.Target = 7 },
		steps:    []step{{0, load(3, 21, 21), scale(3)}, {2, load(3, 21.5, 21.5), scale(4)}},
	}, {
		name:     "scale-up rate",
		settings: func(s *Settings) { s.MaxScaleUpRate, s.PanicThreshold = 2, 10 },
		steps:    []step{{0, load(2, 100, 100), scale(4)}, {2, load(4, 100, 100), scale(8)}},
	}, {
		name:     "scale-up rate rounds up so a slow rate still grows",
		settings: func(s *Settings) { s.MaxScaleUpRate, s.PanicThreshold = 1.1, 10 },
		steps:    []step{{0, load(2, 30, 30), scale(3)}},
	}, {
		name:     "scale-up rate from zero counts one pod",
		settings: func(s *Settings) { s.MaxScaleUpRate, s.PanicThreshold = 2, 1000 },
		steps:    []step{{0, load(0, 100, 100), scale(2)}},
	}, {
		name: "scale-down rate",
		steps: []step{
			{0, load(10, 0.1, 0.1), scale(5)},
			{2, load(5, 0.1, 0.1), scale(2)},
			{4, load(2, 0.1, 0.1), scale(1)},
		},
	}, {
		name:     "scale-down rate set higher",
		settings: func(s *Settings) { s.MaxScaleDownRate = 4 },
		steps:    []step{{0, load(10, 0.1, 0.1), scale(2)}},
	}, {
		name:  "an unreachable revision scales down without rate limit",
		steps: []step{{0, unreachable(load(10, 0.1, 0.1)), scale(1)}},
	}, {
		name:     "min-scale",
		settings: func(s *Settings) { s.MinScale = 3 },
		steps: []step{
			{0, load(3, 0, 0), scale(3)},
			{100, load(3, 0, 0), scale(3)},
			{102, load(3, 45, 45), scale(5)},
		},
	}, {
		name:     "min-scale does not hold an unreachable revision",
		settings: func(s *Settings) { s.MinScale = 3 },
		steps:    []step{{0, unreachable(load(3, 5, 5)), scale(1)}},
	}, {
		name:     "max-scale",
		settings: func(s *Settings) { s.MaxScale = 5 },
		steps:    []step{{0, load(5, 200, 40), scale(5)}, {2, load(5, 40, 40), scale(4)}},
	}, {
		name:     "initial-scale before any metric",
		settings: func(s *Settings) { s.InitialScale = 3 },
		steps: []step{
			{0, Inputs{Reachable: true}, ScaleResult{Valid: true, DesiredScale: 3, ActivatorInPath: false}},
			{2, Inputs{Reachable: true, ReadyPods: 2, HaveMetrics: true}, ScaleResult{Valid: true, DesiredScale: 3}},
			{4, Inputs{Reachable: true, ReadyPods: 3, HaveMetrics: true}, ScaleResult{Valid: true, DesiredScale: 3, Initialized: true}},
			// Once reached, the metrics decide.
			{6, load(3, 0, 0), scale(1)},
		},
	}, {
		name:     "initial-scale below min-scale",
		settings: func(s *Settings) { s.InitialScale, s.MinScale = 2, 4 },
		steps: []step{
			{0, Inputs{Reachable: true, ReadyPods: 2}, ScaleResult{Valid: true, DesiredScale: 4}},
		},
	}, {
		name:     "max-scale caps initial-scale",
		settings: func(s *Settings) { s.InitialScale, s.MaxScale = 3, 2 },
		steps: []step{
			{0, Inputs{Reachable: true}, ScaleResult{Valid: true, DesiredScale: 2}},
			{2, Inputs{Reachable: true, ReadyPods: 2, HaveMetrics: true}, ScaleResult{Valid: true, DesiredScale: 2, Initialized: true}},
		},
	}, {
		name:     "initial-scale is not for unreachable revisions",
		settings: func(s *Settings) { s.InitialScale = 3 },
		steps: []step{
			{0, Inputs{}, ScaleResult{Initialized: true}},
			{2, Inputs{HaveMetrics: true}, ScaleResult{Valid: true, Initialized: true, Inactive: true, ActivatorInPath: true}},
		},
	}, {
		name:     "initial-scale zero starts at zero, behind the activator",
		settings: func(s *Settings) { s.InitialScale = 0 },
		steps:    []step{{0, Inputs{Reachable: true}, inactive(scale(0))}},
	}, {
		name: "no metrics once initialised: keep things as they are",
		steps: []step{
			{0, Inputs{Reachable: true, Initialized: true, ReadyPods: 3}, ScaleResult{Initialized: true}},
		},
	}, {
		name:     "activation-scale from zero",
		settings: func(s *Settings) { s.ActivationScale = 3 },
		steps: []step{
			{0, load(0, 1, 1), scale(3)},
			{2, load(3, 1, 1), scale(3)},
			{4, load(3, 45, 45), scale(5)},
		},
	}, {
		name:     "activation-scale leaves zero at zero",
		settings: func(s *Settings) { s.ActivationScale = 3 },
		steps:    []step{{0, load(0, 0, 0), inactive(scale(0))}},
	}, {
		name:     "scale-down delay keeps the largest scale of the delay",
		settings: func(s *Settings) { s.ScaleDownDelay = 10 * time.Second },
		steps: []step{
			{0, load(5, 50, 50), scale(5)},
			{2, load(5, 30, 30), scale(5)},
			{8, load(5, 30, 30), scale(5)},
			{10, load(5, 30, 30), scale(3)}, // the 5 of t0 is 10 s old
			{12, load(3, 40, 40), scale(4)}, // up at once
		},
	}, {
		name:     "scale-down delay does not hold an unreachable revision",
		settings: func(s *Settings) { s.ScaleDownDelay = 10 * time.Second },
		steps:    []step{{0, unreachable(load(5, 50, 50)), scale(5)}, {2, unreachable(load(5, 10, 10)), scale(1)}},
	}, {
		name: "panic: the panic window wants twice the ready pods",
		steps: []step{
			{0, load(2, 10, 40), panicking(scale(4))},
			{2, load(4, 10, 30), panicking(scale(4))},   // ratchet: no scale-down in panic
			{4, load(4, 10, 100), panicking(scale(10))}, // threshold crossed again at 4 s
			{30, load(10, 60, 10), panicking(scale(10))},
			{64, load(10, 60, 10), panicking(scale(10))}, // 60 s after the last crossing: still in panic
			{66, load(10, 60, 10), scale(6)},             // out of panic: the stable window decides
		},
	}, {
		name: "panic: the stable window can want more than the panic window",
		steps: []step{
			{0, load(2, 80, 40), panicking(scale(8))},
		},
	}, {
		name: "panic: just under the threshold",
		steps: []step{
			{0, load(2, 10, 30), scale(1)}, // 3 pods for 2 ready: 150 %
		},
	}, {
		name:     "panic threshold of 300 %",
		settings: func(s *Settings) { s.PanicThreshold = 3 },
		steps: []step{
			{0, load(2, 10, 50), scale(1)},
			{2, load(2, 10, 60), panicking(scale(6))},
		},
	}, {
		name:  "a new decider holds a busy revision's scale for a stable window",
		ready: 5,
		steps: []step{
			{0, load(5, 0.1, 0.1), panicking(scale(5))},
			{60, load(5, 0.1, 0.1), panicking(scale(5))},
			{62, load(5, 0.1, 0.1), scale(2)},
		},
	}, {
		name:  "a new decider with one pod starts out of panic",
		ready: 1,
		steps: []step{{0, load(1, 10, 10), scale(1)}},
	}, {
		name: "to zero: a stable window active, then the grace period behind the activator",
		steps: []step{
			{0, load(1, 0, 0), scale(1)},
			{58, load(1, 0, 0), scale(1)},
			{60, load(1, 0, 0), inactive(scale(1))},
			{62, behindActivatorSince(61, load(1, 0, 0)), inactive(scale(1))},
			{88, behindActivatorSince(61, load(1, 0, 0)), inactive(scale(1))},
			{90, behindActivatorSince(61, load(1, 0, 0)), inactive(scale(0))},
			{92, behindActivatorSince(61, load(0, 0, 0)), inactive(scale(0))},
		},
	}, {
		name: "to zero: not before the activator has the route",
		steps: []step{
			{0, load(1, 0, 0), scale(1)},
			{60, load(1, 0, 0), inactive(scale(1))},
			{100, load(1, 0, 0), inactive(scale(1))},
			{102, behindActivatorSince(101, load(1, 0, 0)), inactive(scale(0))},
		},
	}, {
		name: "to zero: at once when the activator has had the route for the grace period",
		steps: []step{
			{0, behindActivatorSince(-100, load(1, 0, 0)), scale(1)},
			{60, behindActivatorSince(-100, load(1, 0, 0)), inactive(scale(0))},
		},
	}, {
		name:     "to zero: the pod retention period keeps the last pod",
		settings: func(s *Settings) { s.ScaleToZeroPodRetentionPeriod = 120 * time.Second },
		steps: []step{
			{0, load(1, 0, 0), scale(1)},
			{60, behindActivatorSince(-100, load(1, 0, 0)), inactive(scale(1))},
			{178, behindActivatorSince(-100, load(1, 0, 0)), inactive(scale(1))},
			{180, behindActivatorSince(-100, load(1, 0, 0)), inactive(scale(0))},
		},
	}, {
		name:     "to zero: retention shorter than the grace period",
		settings: func(s *Settings) { s.ScaleToZeroPodRetentionPeriod = 10 * time.Second },
		steps: []step{
			{0, load(1, 0, 0), scale(1)},
			{60, behindActivatorSince(60, load(1, 0, 0)), inactive(scale(1))},
			{70, behindActivatorSince(60, load(1, 0, 0)), inactive(scale(1))},
			{90, behindActivatorSince(60, load(1, 0, 0)), inactive(scale(0))},
		},
	}, {
		name:     "to zero: no retention for an unreachable revision, and no route to wait for",
		settings: func(s *Settings) { s.ScaleToZeroPodRetentionPeriod = 120 * time.Second },
		steps: []step{
			{0, unreachable(load(1, 0, 0)), scale(1)},
			{60, unreachable(load(1, 0, 0)), inactive(scale(1))},
			{90, unreachable(load(1, 0, 0)), inactive(scale(0))},
		},
	}, {
		name:     "to zero: target-burst-capacity -1 has the activator in the path already",
		settings: func(s *Settings) { s.TargetBurstCapacity = -1 },
		steps: []step{
			{0, load(1, 0, 0), ScaleResult{Valid: true, DesiredScale: 1, Initialized: true, ExcessBurstCapacity: -1, ActivatorInPath: true}},
			{60, load(1, 0, 0), ScaleResult{Valid: true, DesiredScale: 1, Initialized: true, ExcessBurstCapacity: -1, ActivatorInPath: true, Inactive: true}},
			{90, load(1, 0, 0), ScaleResult{Valid: true, DesiredScale: 0, Initialized: true, ExcessBurstCapacity: -1, ActivatorInPath: true, Inactive: true}},
		},
	}, {
		name: "to zero: traffic while inactive starts the wait again",
		steps: []step{
			{0, load(1, 0, 0), scale(1)},
			{60, behindActivatorSince(61, load(1, 0, 0)), inactive(scale(1))},
			{70, behindActivatorSince(61, load(1, 2, 2)), scale(1)},
			{80, behindActivatorSince(61, load(1, 0, 0)), inactive(scale(1))},
			{108, behindActivatorSince(61, load(1, 0, 0)), inactive(scale(0))}, // the activator has had 47 s
		},
	}, {
		name:     "to zero: disabled",
		settings: func(s *Settings) { s.EnableScaleToZero = false },
		steps: []step{
			{0, load(1, 0, 0), scale(1)},
			{600, behindActivatorSince(0, load(1, 0, 0)), scale(1)},
			{602, load(0, 0, 0), scale(1)},
		},
	}, {
		name: "at zero stays at zero",
		steps: []step{
			{0, load(0, 0, 0), inactive(scale(0))},
			{2, load(0, 0, 0), inactive(scale(0))},
		},
	}, {
		name: "from zero: the activator's report wakes the revision",
		steps: []step{
			{0, load(0, 0, 0), inactive(scale(0))},
			{2, behindActivatorSince(0, load(0, 1, 1)), scale(1)},
			{8, behindActivatorSince(0, load(1, 1, 1)), scale(1)},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			if tc.settings != nil {
				tc.settings(&s)
			}
			d := NewDecider(s, tc.ready, t0)
			for _, st := range tc.steps {
				got := d.Decide(st.in, at(st.secs))
				if diff := cmp.Diff(st.want, got); diff != "" {
					t.Fatalf("at %vs, Decide(%+v) (-want +got):\n%s", st.secs, st.in, diff)
				}
			}
		})
	}
}

func TestDeciderExcessBurstCapacity(t *testing.T) {
	tests := []struct {
		name string
		tbc  float64
		in   Inputs
		want ScaleResult
	}{{
		name: "room to spare: the pods serve directly",
		tbc:  211,
		in:   load(30, 50, 50),
		want: ScaleResult{Valid: true, DesiredScale: 15, Initialized: true, ExcessBurstCapacity: 39},
	}, {
		name: "too little room: the activator stays in the path",
		tbc:  211,
		in:   load(20, 50, 50),
		want: ScaleResult{Valid: true, DesiredScale: 10, Initialized: true, ExcessBurstCapacity: -61, ActivatorInPath: true},
	}, {
		name: "rounded down",
		tbc:  10,
		in:   load(2, 5.5, 5.5),
		want: ScaleResult{Valid: true, DesiredScale: 1, Initialized: true, ExcessBurstCapacity: 4},
	}, {
		name: "zero ready pods",
		tbc:  10,
		in:   load(0, 5, 5),
		want: ScaleResult{Valid: true, DesiredScale: 1, Initialized: true, ExcessBurstCapacity: -15, ActivatorInPath: true},
	}, {
		name: "-1: the activator is always in the path",
		tbc:  -1,
		in:   load(30, 0.5, 0.5),
		want: ScaleResult{Valid: true, DesiredScale: 15, Initialized: true, ExcessBurstCapacity: -1, ActivatorInPath: true},
	}, {
		name: "0: only at zero",
		tbc:  0,
		in:   load(2, 100, 100),
		want: ScaleResult{Valid: true, DesiredScale: 10, Initialized: true, Panicking: true},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			s.TargetBurstCapacity = tc.tbc
			got := NewDecider(s, 0, t0).Decide(tc.in, t0)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeciderUpdate(t *testing.T) {
	s := base()
	s.PanicThreshold = 10
	d := NewDecider(s, 0, t0)
	if got := d.Decide(load(4, 40, 40), at(0)).DesiredScale; got != 4 {
		t.Fatalf("before: %d pods, want 4", got)
	}

	// A new target applies at the next decision.
	s.Target = 5
	s.ScaleDownDelay = 10 * time.Second
	d.Update(s)
	if diff := cmp.Diff(s, d.Settings()); diff != "" {
		t.Errorf("Settings (-want +got):\n%s", diff)
	}
	if got := d.Decide(load(4, 40, 40), at(2)).DesiredScale; got != 8 {
		t.Errorf("new target: %d pods, want 8", got)
	}
	// The delay added by the update holds the 8.
	if got := d.Decide(load(8, 20, 20), at(4)).DesiredScale; got != 8 {
		t.Errorf("new delay: %d pods, want 8", got)
	}
	// A longer delay keeps what the shorter one holds; a shorter one lets it go sooner.
	s.ScaleDownDelay = 4 * time.Second
	d.Update(s)
	if got := d.Decide(load(8, 20, 20), at(6)).DesiredScale; got != 4 {
		t.Errorf("shorter delay: %d pods, want 4", got)
	}
	s.ScaleDownDelay = 0
	d.Update(s)
	if got := d.Decide(load(4, 5, 5), at(7)).DesiredScale; got != 2 {
		t.Errorf("no delay: %d pods, want 2", got)
	}
}

func TestMaxWindow(t *testing.T) {
	w := newMaxWindow(5 * time.Second)
	steps := []struct {
		secs  float64
		scale int32
		want  int32
	}{
		{0, 3, 3}, {1, 5, 5}, {2, 4, 5}, {3, 1, 5}, {5.9, 2, 5},
		{6, 2, 4}, // the 5 of 1 s is 5 s old
		{7, 2, 2}, // so is the 4 of 2 s; 2 ≥ the 1 of 3 s
		{7, 9, 9}, // two records in one second: the larger stands
		{7.5, 1, 9}, {12, 1, 1},
	}
	for _, st := range steps {
		if got := w.record(at(st.secs), st.scale); got != st.want {
			t.Fatalf("record(%vs, %d) = %d, want %d", st.secs, st.scale, got, st.want)
		}
	}
	if len(w.kept) > 2 {
		t.Errorf("kept %v: values that can no longer be the largest are not dropped", w.kept)
	}
}
