package config

import (
	"fmt"
	"strings"
	"time"
)

// Autoscaler are the values of Knative's config-autoscaler ConfigMap: the cluster-wide
// defaults of the KPA that per-revision autoscaling.knative.dev annotations override.
type Autoscaler struct {
	EnableScaleToZero bool
	// ContainerConcurrencyTargetFraction is container-concurrency-target-percentage / 100.
	ContainerConcurrencyTargetFraction float64
	ContainerConcurrencyTargetDefault  float64
	// TargetUtilization is the utilisation aimed at for the rps metric. Knative has no key
	// for it either: a revision changes it with target-utilization-percentage.
	TargetUtilization float64
	RPSTargetDefault  float64
	// TargetBurstCapacity: -1 keeps the activator always in the path, 0 only at zero.
	TargetBurstCapacity      float64
	ActivatorCapacity        float64
	PanicWindowPercentage    float64
	PanicThresholdPercentage float64
	MaxScaleUpRate           float64
	MaxScaleDownRate         float64

	StableWindow                  time.Duration
	ScaleToZeroGracePeriod        time.Duration
	ScaleToZeroPodRetentionPeriod time.Duration
	ScaleDownDelay                time.Duration

	InitialScale          int32
	AllowZeroInitialScale bool
	MinScale              int32
	MaxScale              int32
	MaxScaleLimit         int32

	PodAutoscalerClass string
}

// NewAutoscaler returns the defaults Knative ships.
func NewAutoscaler() *Autoscaler {
	return &Autoscaler{
		EnableScaleToZero:                  true,
		ContainerConcurrencyTargetFraction: 0.7,
		ContainerConcurrencyTargetDefault:  100,
		TargetUtilization:                  0.7,
		RPSTargetDefault:                   200,
		TargetBurstCapacity:                211,
		ActivatorCapacity:                  100,
		PanicWindowPercentage:              10,
		PanicThresholdPercentage:           200,
		MaxScaleUpRate:                     1000,
		MaxScaleDownRate:                   2,
		StableWindow:                       60 * time.Second,
		ScaleToZeroGracePeriod:             30 * time.Second,
		InitialScale:                       1,
		PodAutoscalerClass:                 "kpa.autoscaling.knative.dev",
	}
}

// Bounds the autoscaler's settings must respect.
const (
	autoscalerWindowMin = 6 * time.Second
	autoscalerWindowMax = time.Hour
	autoscalerBucket    = time.Second
)

// NewAutoscalerFromMap reads the data of a config-autoscaler ConfigMap. A malformed or
// out-of-range value, or an unknown key, is an error naming the key.
func NewAutoscalerFromMap(data map[string]string) (*Autoscaler, error) {
	a := NewAutoscaler()
	p := newParser(data)
	p.bool("enable-scale-to-zero", &a.EnableScaleToZero)
	pct := a.ContainerConcurrencyTargetFraction * 100
	p.float("container-concurrency-target-percentage", &pct)
	a.ContainerConcurrencyTargetFraction = pct / 100
	if pct > 0 && pct <= 1 {
		// As in Knative, a value in (0, 1] is an older manifest's fraction, not a percentage.
		a.ContainerConcurrencyTargetFraction = pct
	}
	p.float("container-concurrency-target-default", &a.ContainerConcurrencyTargetDefault)
	p.float("requests-per-second-target-default", &a.RPSTargetDefault)
	p.float("target-burst-capacity", &a.TargetBurstCapacity)
	p.float("activator-capacity", &a.ActivatorCapacity)
	p.float("panic-window-percentage", &a.PanicWindowPercentage)
	p.float("panic-threshold-percentage", &a.PanicThresholdPercentage)
	p.float("max-scale-up-rate", &a.MaxScaleUpRate)
	p.float("max-scale-down-rate", &a.MaxScaleDownRate)
	p.duration("stable-window", &a.StableWindow)
	p.duration("scale-to-zero-grace-period", &a.ScaleToZeroGracePeriod)
	p.duration("scale-to-zero-pod-retention-period", &a.ScaleToZeroPodRetentionPeriod)
	p.duration("scale-down-delay", &a.ScaleDownDelay)
	p.int32("initial-scale", &a.InitialScale)
	p.bool("allow-zero-initial-scale", &a.AllowZeroInitialScale)
	p.int32("min-scale", &a.MinScale)
	p.int32("max-scale", &a.MaxScale)
	p.int32("max-scale-limit", &a.MaxScaleLimit)
	// The class of a revision that names none: Knative's KPA or the HPA; it is fixed in the
	// revision's PodAutoscaler when that is made, so a change applies to new revisions.
	p.only("pod-autoscaler-class", "kpa.autoscaling.knative.dev", "hpa.autoscaling.knative.dev")
	p.string("pod-autoscaler-class", &a.PodAutoscalerClass)
	a.PodAutoscalerClass = strings.ToLower(a.PodAutoscalerClass)
	if err := p.err(); err != nil {
		return nil, err
	}
	if err := a.check(); err != nil {
		return nil, err
	}
	return a, nil
}

// check applies Knative's rules for config-autoscaler.
func (a *Autoscaler) check() error {
	wholeSeconds := func(d time.Duration) bool { return d.Round(time.Second) == d }
	for _, f := range []struct {
		key string
		val float64
	}{
		{"container-concurrency-target-default", a.ContainerConcurrencyTargetDefault},
		{"requests-per-second-target-default", a.RPSTargetDefault},
		{"activator-capacity", a.ActivatorCapacity},
		{"panic-window-percentage", a.PanicWindowPercentage},
		{"panic-threshold-percentage", a.PanicThresholdPercentage},
	} {
		if f.val < 0 {
			return fmt.Errorf("%s: %v must not be negative", f.key, f.val)
		}
	}
	panicWindow := time.Duration(a.PanicWindowPercentage / 100 * float64(a.StableWindow))
	switch {
	case a.ContainerConcurrencyTargetFraction <= 0 || a.ContainerConcurrencyTargetFraction > 1:
		return fmt.Errorf("container-concurrency-target-percentage: %v is outside (0, 100]", a.ContainerConcurrencyTargetFraction*100)
	case a.ContainerConcurrencyTargetDefault < 0.01:
		return fmt.Errorf("container-concurrency-target-default: %v is less than 0.01", a.ContainerConcurrencyTargetDefault)
	case a.RPSTargetDefault < 0.01:
		return fmt.Errorf("requests-per-second-target-default: %v is less than 0.01", a.RPSTargetDefault)
	case a.TargetBurstCapacity < 0 && a.TargetBurstCapacity != -1:
		return fmt.Errorf("target-burst-capacity: %v must be non-negative, or -1 for unlimited", a.TargetBurstCapacity)
	case a.ActivatorCapacity < 1:
		return fmt.Errorf("activator-capacity: %v is less than 1", a.ActivatorCapacity)
	case a.MaxScaleUpRate <= 1:
		return fmt.Errorf("max-scale-up-rate: %v must be greater than 1", a.MaxScaleUpRate)
	case a.MaxScaleDownRate <= 1:
		return fmt.Errorf("max-scale-down-rate: %v must be greater than 1", a.MaxScaleDownRate)
	case a.StableWindow < autoscalerWindowMin || a.StableWindow > autoscalerWindowMax || !wholeSeconds(a.StableWindow):
		return fmt.Errorf("stable-window: %v must be in [%v, %v] in whole seconds", a.StableWindow, autoscalerWindowMin, autoscalerWindowMax)
	case panicWindow < autoscalerBucket || a.PanicWindowPercentage > 100:
		return fmt.Errorf("panic-window-percentage: %v must be in [%v, 100] for a stable window of %v",
			a.PanicWindowPercentage, 100*float64(autoscalerBucket)/float64(a.StableWindow), a.StableWindow)
	case a.PanicThresholdPercentage < 110 || a.PanicThresholdPercentage > 1000:
		return fmt.Errorf("panic-threshold-percentage: %v must be in [110, 1000]", a.PanicThresholdPercentage)
	case a.ScaleToZeroGracePeriod < autoscalerWindowMin:
		return fmt.Errorf("scale-to-zero-grace-period: %v is less than %v", a.ScaleToZeroGracePeriod, autoscalerWindowMin)
	case a.ScaleToZeroPodRetentionPeriod < 0:
		return fmt.Errorf("scale-to-zero-pod-retention-period: %v must not be negative", a.ScaleToZeroPodRetentionPeriod)
	case a.ScaleDownDelay < 0 || !wholeSeconds(a.ScaleDownDelay):
		return fmt.Errorf("scale-down-delay: %v must be non-negative whole seconds", a.ScaleDownDelay)
	case a.InitialScale < 0 || (a.InitialScale == 0 && !a.AllowZeroInitialScale):
		return fmt.Errorf("initial-scale: %d must be at least 1 (0 only with allow-zero-initial-scale: true)", a.InitialScale)
	case a.MaxScaleLimit < 0:
		return fmt.Errorf("max-scale-limit: %d must not be negative", a.MaxScaleLimit)
	case a.MaxScale < 0 || (a.MaxScaleLimit > 0 && a.MaxScale > a.MaxScaleLimit):
		return fmt.Errorf("max-scale: %d must be in [0, max-scale-limit %d]", a.MaxScale, a.MaxScaleLimit)
	case a.MinScale < 0 || (a.MaxScale > 0 && a.MinScale > a.MaxScale):
		return fmt.Errorf("min-scale: %d must be in [0, max-scale %d]", a.MinScale, a.MaxScale)
	}
	return nil
}
