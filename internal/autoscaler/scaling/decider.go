package scaling

import (
	"math"
	"time"
)

// Inputs are what one decision observes of a revision.
type Inputs struct {
	// ReadyPods is how many of the revision's pods are ready to serve.
	ReadyPods int32
	// Reachable is whether a route sends traffic to the revision. An unreachable revision
	// scales down without rate limit, and ignores min-scale, initial-scale, scale-down-delay
	// and the pod retention period.
	Reachable bool
	// HaveMetrics is false while the stable window holds no sample; Stable and Panic are then
	// meaningless.
	HaveMetrics bool
	// Stable and Panic are the revision's metric (concurrency or requests per second, summed
	// over its pods and the activator) averaged over the stable and the panic window.
	Stable, Panic float64
	// Initialized is whether the revision has once reached its initial scale: the previous
	// ScaleResult.Initialized, kept in the PodAutoscaler's status so that a restart does not
	// scale an idle revision back up to initial-scale.
	Initialized bool
	// ActivatorSince is when the activator took over the revision's route; zero while the
	// route goes to the pods.
	ActivatorSince time.Time
}

// ScaleResult is one decision.
type ScaleResult struct {
	// Valid is false when there is nothing to decide on (no metrics yet, and the revision
	// needs no initial scale): leave the scale and the route as they are.
	Valid bool
	// DesiredScale is the number of pods the revision should have.
	DesiredScale int32
	// ExcessBurstCapacity is the spare capacity of the ready pods beyond the target burst
	// capacity and the load of the panic window; negative means the activator must stay in
	// the path to absorb a burst.
	ExcessBurstCapacity int32
	// ActivatorInPath is whether the activator should take the revision's route: there is
	// too little spare capacity, or the revision is at zero or on its way there.
	ActivatorInPath bool
	// Panicking is whether the decider is in panic mode, where the scale never decreases.
	Panicking bool
	// Inactive is whether the revision has had no traffic for long enough to go to zero, and
	// is waiting for the activator and the grace and retention periods (Knative's Active
	// condition False, reason NoTraffic).
	Inactive bool
	// Initialized is Inputs.Initialized, or true once the ready pods reach the initial scale.
	Initialized bool
}

// Decider decides the scale of one revision. It does no I/O, starts no goroutine and reads
// no clock: each decision is given its time. It is not safe for concurrent use; the caller
// serialises Decide and Update.
type Decider struct {
	s Settings

	// panicSince is the last decision that crossed the panic threshold; zero out of panic.
	panicSince time.Time
	// panicPods is the most pods wanted during this panic; the scale does not go below it.
	panicPods int32
	// delay holds the scale up for ScaleDownDelay after each decision; nil without delay.
	delay *maxWindow
	// activeSince is the first decision of the current run with ready pods.
	activeSince time.Time
	// inactiveSince is when the revision, active for a stable window, first wanted zero.
	inactiveSince time.Time
}

// NewDecider starts deciding for a revision that has readyPods now. With more than one ready
// pod it starts in panic mode, holding the current scale for a stable window: after a restart
// the metric history is gone, and a busy revision must not be scaled down for want of it.
func NewDecider(s Settings, readyPods int32, now time.Time) *Decider {
	d := &Decider{}
	d.Update(s)
	if readyPods > 1 {
		d.panicSince, d.panicPods = now, readyPods
	}
	return d
}

// Update applies new settings (a changed config-autoscaler or annotation); the panic state
// and the other history carry over.
func (d *Decider) Update(s Settings) {
	switch {
	case s.ScaleDownDelay <= 0:
		d.delay = nil
	case d.delay == nil:
		d.delay = newMaxWindow(s.ScaleDownDelay)
	default:
		d.delay.span = s.ScaleDownDelay
	}
	d.s = s
}

// Settings returns the settings the decider uses.
func (d *Decider) Settings() Settings { return d.s }

// Decide returns the decision for in at now.
func (d *Decider) Decide(in Inputs, now time.Time) ScaleResult {
	s := &d.s
	if in.ReadyPods > 0 {
		if d.activeSince.IsZero() {
			d.activeSince = now
		}
	} else {
		d.activeSince = time.Time{}
	}
	minScale := int32(0)
	if in.Reachable {
		minScale = s.MinScale
		if !in.Initialized {
			minScale = max(minScale, s.InitialScale)
		}
		// max-scale is a hard cap, an initial-scale above it included.
		if s.MaxScale > 0 {
			minScale = min(minScale, s.MaxScale)
		}
	}
	r := ScaleResult{Valid: true, Initialized: in.Initialized || in.ReadyPods >= minScale}

	var want int32
	if in.HaveMetrics {
		want = d.fromMetrics(in, now)
	} else if in.Initialized || !in.Reachable {
		return ScaleResult{Initialized: r.Initialized, Panicking: !d.panicSince.IsZero()}
	}
	r.Panicking = !d.panicSince.IsZero()

	if want < minScale {
		want = minScale
	} else if s.MaxScale > 0 && want > s.MaxScale {
		want = s.MaxScale
	}
	if want == 0 {
		want = d.towardsZero(in, now)
	} else {
		d.inactiveSince = time.Time{}
	}
	r.DesiredScale = want
	r.Inactive = !d.inactiveSince.IsZero()

	switch tbc := s.TargetBurstCapacity; {
	case tbc == 0:
		r.ExcessBurstCapacity = 0
	case tbc > 0:
		spare := math.Floor(float64(in.ReadyPods)*s.Total - tbc - in.Panic)
		r.ExcessBurstCapacity = int32(max(math.MinInt32, min(math.MaxInt32, spare)))
	default:
		r.ExcessBurstCapacity = -1
	}
	r.ActivatorInPath = want == 0 || r.Inactive || r.ExcessBurstCapacity < 0
	return r
}

// fromMetrics is the scale the metric windows ask for: each window's demand over the target,
// kept within the rate limits, ratcheted up in panic and held up by the scale-down delay.
func (d *Decider) fromMetrics(in Inputs, now time.Time) int32 {
	s := &d.s
	// A revision at zero is rated as one pod, so it can grow at all.
	ready := max(1, float64(in.ReadyPods))
	most := math.Ceil(s.MaxScaleUpRate * ready)
	least := 0.0
	if in.Reachable {
		least = math.Floor(ready / s.MaxScaleDownRate)
	}
	stableWant := math.Ceil(in.Stable / s.Target)
	panicWant := math.Ceil(in.Panic / s.Target)
	stable := int32(min(max(stableWant, least), most))
	panicked := int32(min(max(panicWant, least), most))
	if s.ActivationScale > 1 {
		if stableWant > 0 {
			stable = max(stable, s.ActivationScale)
		}
		if panicWant > 0 {
			panicked = max(panicked, s.ActivationScale)
		}
	}

	switch {
	case panicWant/ready >= s.PanicThreshold:
		d.panicSince = now
	case !d.panicSince.IsZero() && now.Sub(d.panicSince) > s.StableWindow:
		// A stable window without crossing the threshold: the surge is in the stable
		// average now.
		d.panicSince, d.panicPods = time.Time{}, 0
	}
	want := stable
	if !d.panicSince.IsZero() {
		want = max(want, panicked, d.panicPods)
		d.panicPods = want
	}
	if in.Reachable && d.delay != nil {
		want = d.delay.record(now, want)
	}
	return want
}

// towardsZero is the scale when everything else says zero: the last pod goes only after the
// revision has been active for a stable window, the activator has taken its route, and the
// grace and retention periods have passed. Until then it keeps one pod.
func (d *Decider) towardsZero(in Inputs, now time.Time) int32 {
	s := &d.s
	switch {
	case !s.EnableScaleToZero:
		d.inactiveSince = time.Time{}
		return 1
	case in.ReadyPods == 0:
		// No pod to keep: stay at zero, behind the activator.
		if d.inactiveSince.IsZero() {
			d.inactiveSince = now
		}
		return 0
	case now.Sub(d.activeSince) < s.StableWindow:
		return 1
	}
	if d.inactiveSince.IsZero() {
		d.inactiveSince = now
	}
	retention := s.ScaleToZeroPodRetentionPeriod
	behindActivator := !in.ActivatorSince.IsZero()
	if !in.Reachable {
		// No route to take over, and no last pod worth keeping.
		retention, behindActivator = 0, true
	} else if s.TargetBurstCapacity == -1 {
		// The activator never leaves the path.
		behindActivator = true
	}
	inactiveFor := now.Sub(d.inactiveSince)
	switch {
	case !behindActivator:
		return 1
	case inactiveFor >= max(s.ScaleToZeroGracePeriod, retention):
		return 0
	case inactiveFor < retention:
		return 1
	case !in.ActivatorSince.IsZero() && now.Sub(in.ActivatorSince) >= s.ScaleToZeroGracePeriod:
		// The activator has held the route for the grace period already.
		return 0
	}
	return 1
}
