package scaling

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	"github.com/gantry-run/gantry/pkg/apis/config"
)

// BucketSize is the length of one metric bucket; the panic window is never shorter.
const BucketSize = time.Second

// Settings are one revision's autoscaling parameters: the config-autoscaler values with the
// revision's autoscaling.knative.dev annotations applied. Build them with NewSettings.
type Settings struct {
	// Metric is autoscaling.Concurrency or autoscaling.RPS.
	Metric string
	// Target is the value of the metric one pod should carry: Total × utilisation, at least
	// autoscaling.TargetMin.
	Target float64
	// Total is the most one pod can carry: containerConcurrency for the concurrency metric
	// (the target annotation when smaller), or the target annotation / default.
	Total float64
	// TargetBurstCapacity is the spare capacity to keep; -1 keeps the activator in the path,
	// 0 puts it there only at zero.
	TargetBurstCapacity float64
	// ActivatorCapacity is how many requests one activator takes, for sizing its share.
	ActivatorCapacity float64
	// PanicThreshold is panic-threshold-percentage / 100: panic begins when the panic
	// window wants this many times the ready pods.
	PanicThreshold float64

	StableWindow time.Duration
	// PanicWindow is StableWindow × panic-window-percentage / 100, in whole seconds, at least
	// BucketSize.
	PanicWindow time.Duration

	MaxScaleUpRate   float64
	MaxScaleDownRate float64

	// MinScale and MaxScale bound the scale; MaxScale 0 is unbounded.
	MinScale, MaxScale int32
	// InitialScale is the scale a new revision starts at, until it has once reached it.
	InitialScale int32
	// ActivationScale is the least scale when scaling up from zero (1 when not set).
	ActivationScale int32

	ScaleDownDelay time.Duration

	EnableScaleToZero             bool
	ScaleToZeroGracePeriod        time.Duration
	ScaleToZeroPodRetentionPeriod time.Duration
}

// NewSettings applies a revision's annotations and containerConcurrency to the cluster's
// config-autoscaler values. An annotation whose value does not parse, or a metric the KPA does
// not scale on, is left out (the config value stands) and named in the returned error; the
// webhook refuses such values, so only objects written around it have them.
func NewSettings(cfg *config.Autoscaler, annotations map[string]string, containerConcurrency int64) (Settings, error) {
	a := reader{m: annotations}
	s := Settings{
		Metric:                        autoscaling.Concurrency,
		TargetBurstCapacity:           cfg.TargetBurstCapacity,
		ActivatorCapacity:             cfg.ActivatorCapacity,
		PanicThreshold:                cfg.PanicThresholdPercentage / 100,
		StableWindow:                  cfg.StableWindow,
		MaxScaleUpRate:                cfg.MaxScaleUpRate,
		MaxScaleDownRate:              cfg.MaxScaleDownRate,
		MinScale:                      cfg.MinScale,
		MaxScale:                      cfg.MaxScale,
		InitialScale:                  cfg.InitialScale,
		ActivationScale:               1,
		ScaleDownDelay:                cfg.ScaleDownDelay,
		EnableScaleToZero:             cfg.EnableScaleToZero,
		ScaleToZeroGracePeriod:        cfg.ScaleToZeroGracePeriod,
		ScaleToZeroPodRetentionPeriod: cfg.ScaleToZeroPodRetentionPeriod,
	}
	if k, v, ok := autoscaling.MetricAnnotation.Get(annotations); ok {
		switch v {
		case autoscaling.Concurrency, autoscaling.RPS:
			s.Metric = v
		default:
			a.errs = append(a.errs, fmt.Errorf("%s: %q is not a metric the KPA scales on (%s or %s)", k, v, autoscaling.Concurrency, autoscaling.RPS))
		}
	}

	var utilization float64
	if s.Metric == autoscaling.RPS {
		s.Total, utilization = cfg.RPSTargetDefault, cfg.TargetUtilization
	} else {
		s.Total, utilization = float64(containerConcurrency), cfg.ContainerConcurrencyTargetFraction
		if containerConcurrency == 0 {
			s.Total = cfg.ContainerConcurrencyTargetDefault
		}
	}
	if target, ok := a.float(autoscaling.TargetAnnotation); ok {
		s.Total = target
		if s.Metric == autoscaling.Concurrency && containerConcurrency > 0 {
			// Never aim above what the container admits.
			s.Total = min(target, float64(containerConcurrency))
		}
	}
	if pct, ok := a.float(autoscaling.TargetUtilizationPercentageAnnotation); ok {
		utilization = pct / 100
	}
	s.Target = max(autoscaling.TargetMin, s.Total*utilization)

	if v, ok := a.float(autoscaling.TargetBurstCapacityAnnotation); ok {
		s.TargetBurstCapacity = v
	}
	if v, ok := a.float(autoscaling.PanicThresholdPercentageAnnotation); ok {
		s.PanicThreshold = v / 100
	}
	if v, ok := a.duration(autoscaling.WindowAnnotation); ok {
		s.StableWindow = v
	}
	panicPct := cfg.PanicWindowPercentage
	if v, ok := a.float(autoscaling.PanicWindowPercentageAnnotation); ok {
		panicPct = v
	}
	s.PanicWindow = max(BucketSize, time.Duration(float64(s.StableWindow)*panicPct/100).Round(time.Second))

	if v, ok := a.int32(autoscaling.MinScaleAnnotation); ok {
		s.MinScale = v
	}
	if v, ok := a.int32(autoscaling.MaxScaleAnnotation); ok {
		s.MaxScale = v
	}
	if v, ok := a.int32(autoscaling.InitialScaleAnnotation); ok && (v > 0 || cfg.AllowZeroInitialScale) {
		s.InitialScale = v
	}
	if v, ok := a.int32(autoscaling.ActivationScaleAnnotation); ok && v > 1 {
		s.ActivationScale = v
	}
	if v, ok := a.duration(autoscaling.ScaleDownDelayAnnotation); ok {
		s.ScaleDownDelay = v
	}
	if v, ok := a.duration(autoscaling.ScaleToZeroPodRetentionPeriodAnnotation); ok {
		s.ScaleToZeroPodRetentionPeriod = v
	}
	return s, errors.Join(a.errs...)
}

// reader reads annotation values, collecting the ones that do not parse.
type reader struct {
	m    map[string]string
	errs []error
}

func (r *reader) get(a autoscaling.Annotation, kind string, parse func(string) error) bool {
	k, v, ok := a.Get(r.m)
	if !ok {
		return false
	}
	if err := parse(strings.TrimSpace(v)); err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: %q is not %s", k, v, kind))
		return false
	}
	return true
}

func (r *reader) float(a autoscaling.Annotation) (f float64, ok bool) {
	ok = r.get(a, "a number", func(v string) (err error) {
		f, err = strconv.ParseFloat(v, 64)
		if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
			err = strconv.ErrSyntax
		}
		return err
	})
	return f, ok
}

func (r *reader) int32(a autoscaling.Annotation) (n int32, ok bool) {
	ok = r.get(a, "a non-negative integer", func(v string) error {
		i, err := strconv.ParseInt(v, 10, 32)
		if err == nil && i < 0 {
			err = strconv.ErrRange
		}
		n = int32(i)
		return err
	})
	return n, ok
}

func (r *reader) duration(a autoscaling.Annotation) (d time.Duration, ok bool) {
	ok = r.get(a, "a non-negative duration", func(v string) (err error) {
		d, err = time.ParseDuration(v)
		if err == nil && d < 0 {
			err = strconv.ErrRange
		}
		return err
	})
	return d, ok
}
