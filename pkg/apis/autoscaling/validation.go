package autoscaling

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-run/gantry/pkg/apis"
)

// Options are the operator settings some rules depend on.
type Options struct {
	// AllowZeroInitialScale lets initial-scale be 0 (config-autoscaler
	// allow-zero-initial-scale).
	AllowZeroInitialScale bool
	// MaxScaleLimit, when positive, bounds max-scale (config-autoscaler
	// max-scale-limit).
	MaxScaleLimit int32
}

// ValidateAnnotations checks the autoscaling annotations of m with the
// shipped operator settings. Errors name metadata.annotations.<key>, as
// Knative's do.
func ValidateAnnotations(m map[string]string) *apis.FieldError {
	return Options{}.ValidateAnnotations(m)
}

// ValidateAnnotations checks the autoscaling annotations of m: each value
// parses and lies within its bounds, min-scale ≤ max-scale, the class is
// known and the metric suits it, and no setting is spelt two ways.
func (o Options) ValidateAnnotations(m map[string]string) *apis.FieldError {
	if len(m) == 0 {
		return nil
	}
	var errs *apis.FieldError
	for _, a := range all {
		var present []string
		for _, k := range a.Keys() {
			if _, ok := m[k]; ok {
				present = append(present, k)
			}
		}
		if len(present) > 1 {
			errs = errs.Also(apis.ErrMultipleOneOf(present...).ViaField("annotations"))
		}
	}
	errs = errs.Also(validateClassMetric(m))
	errs = errs.Also(validateFloats(m))
	errs = errs.Also(validateDurations(m))
	errs = errs.Also(o.validateScales(m))
	return annotationsPath(errs)
}

// annotationsPath turns the annotations.<key> paths of errs into
// metadata.annotations.<key>.
func annotationsPath(errs *apis.FieldError) *apis.FieldError {
	return errs.ViaField("metadata")
}

func keyErr(key string, e *apis.FieldError) *apis.FieldError {
	return e.ViaField("annotations", key)
}

func validateClassMetric(m map[string]string) *apis.FieldError {
	var errs *apis.FieldError
	class := KPA
	if k, v, ok := ClassAnnotation.Get(m); ok {
		switch v {
		case HPA, KPA:
			class = v
		default:
			errs = errs.Also(keyErr(k, apis.ErrInvalidValue(v, apis.CurrentField,
				fmt.Sprintf("must be %s or %s", KPA, HPA))))
		}
	}
	if k, v, ok := MetricAnnotation.Get(m); ok {
		switch class {
		case KPA:
			if v != Concurrency && v != RPS {
				errs = errs.Also(keyErr(k, apis.ErrInvalidValue(v, apis.CurrentField,
					fmt.Sprintf("must be %s or %s for class %s", Concurrency, RPS, KPA))))
			}
		case HPA:
			if strings.TrimSpace(v) == "" {
				errs = errs.Also(keyErr(k, apis.ErrInvalidValue(v, apis.CurrentField,
					fmt.Sprintf("must be %s, %s or a custom metric for class %s", CPU, Memory, HPA))))
			}
		}
	}
	if k, _, ok := WindowAnnotation.Get(m); ok && class == HPA {
		errs = errs.Also(keyErr(k, apis.ErrGeneric("only applies to class "+KPA, apis.CurrentField)))
	}
	return errs
}

func validateFloats(m map[string]string) *apis.FieldError {
	rules := []struct {
		a        Annotation
		min, max float64
		extra    float64 // another accepted value, NaN when none
	}{
		{TargetAnnotation, TargetMin, math.MaxFloat32, math.NaN()},
		{TargetUtilizationPercentageAnnotation, TargetUtilizationPercentageMin, TargetUtilizationPercentageMax, math.NaN()},
		{TargetBurstCapacityAnnotation, 0, math.MaxFloat32, TargetBurstCapacityUnlimited},
		{PanicWindowPercentageAnnotation, PanicWindowPercentageMin, PanicWindowPercentageMax, math.NaN()},
		{PanicThresholdPercentageAnnotation, PanicThresholdPercentageMin, PanicThresholdPercentageMax, math.NaN()},
	}
	var errs *apis.FieldError
	for _, r := range rules {
		k, v, ok := r.a.Get(m)
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			errs = errs.Also(keyErr(k, apis.ErrInvalidValue(v, apis.CurrentField, "must be a number")))
			continue
		}
		if f == r.extra {
			continue
		}
		if f < r.min || f > r.max {
			errs = errs.Also(keyErr(k, apis.ErrOutOfBoundsValue(v, r.min, r.max, apis.CurrentField)))
		}
	}
	return errs
}

func validateDurations(m map[string]string) *apis.FieldError {
	rules := []struct {
		a        Annotation
		min, max time.Duration
	}{
		{WindowAnnotation, WindowMin, WindowMax},
		{ScaleDownDelayAnnotation, 0, ScaleDownDelayMax},
		{ScaleToZeroPodRetentionPeriodAnnotation, 0, ScaleToZeroPodRetentionPeriodMax},
	}
	var errs *apis.FieldError
	for _, r := range rules {
		k, v, ok := r.a.Get(m)
		if !ok {
			continue
		}
		d, err := time.ParseDuration(strings.TrimSpace(v))
		switch {
		case err != nil:
			errs = errs.Also(keyErr(k, apis.ErrInvalidValue(v, apis.CurrentField, "must be a duration such as 60s")))
		case d < r.min || d > r.max:
			errs = errs.Also(keyErr(k, apis.ErrOutOfBoundsValue(v, r.min, r.max, apis.CurrentField)))
		case d.Truncate(time.Second) != d:
			errs = errs.Also(keyErr(k, apis.ErrInvalidValue(v, apis.CurrentField, "must be a whole number of seconds")))
		}
	}
	return errs
}

// parseInt32 reads a non-negative int32 annotation; ok is false when it is
// absent or invalid (invalid values are reported in errs).
func parseInt32(m map[string]string, a Annotation, min int32, errs **apis.FieldError) (key string, val int32, ok bool) {
	k, v, present := a.Get(m)
	if !present {
		return "", 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
	if err != nil {
		*errs = (*errs).Also(keyErr(k, apis.ErrInvalidValue(v, apis.CurrentField, "must be an integer")))
		return k, 0, false
	}
	if int32(n) < min {
		*errs = (*errs).Also(keyErr(k, apis.ErrOutOfBoundsValue(v, min, math.MaxInt32, apis.CurrentField)))
		return k, 0, false
	}
	return k, int32(n), true
}

func (o Options) validateScales(m map[string]string) *apis.FieldError {
	var errs *apis.FieldError
	_, minScale, hasMin := parseInt32(m, MinScaleAnnotation, 0, &errs)
	maxKey, maxScale, hasMax := parseInt32(m, MaxScaleAnnotation, 0, &errs)
	initMin := int32(1)
	if o.AllowZeroInitialScale {
		initMin = 0
	}
	parseInt32(m, InitialScaleAnnotation, initMin, &errs)
	actKey, activation, hasAct := parseInt32(m, ActivationScaleAnnotation, 1, &errs)

	if hasMax && o.MaxScaleLimit > 0 && (maxScale == 0 || maxScale > o.MaxScaleLimit) {
		errs = errs.Also(keyErr(maxKey, apis.ErrOutOfBoundsValue(maxScale, 1, o.MaxScaleLimit, apis.CurrentField)))
	}
	if hasMin && hasMax && maxScale != 0 && maxScale < minScale {
		errs = errs.Also(keyErr(maxKey, apis.ErrInvalidValue(
			fmt.Sprintf("max-scale=%d is less than min-scale=%d", maxScale, minScale), apis.CurrentField)))
	}
	if hasAct && hasMax && maxScale != 0 && activation > maxScale {
		errs = errs.Also(keyErr(actKey, apis.ErrInvalidValue(
			fmt.Sprintf("activation-scale=%d is greater than max-scale=%d", activation, maxScale), apis.CurrentField)))
	}
	return errs
}
