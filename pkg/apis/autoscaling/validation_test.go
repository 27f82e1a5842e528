package autoscaling

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidateAnnotations(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		in   map[string]string
		want string
	}{{
		name: "nil",
	}, {
		name: "all valid",
		in: map[string]string{
			ClassAnnotationKey: KPA, MetricAnnotationKey: RPS, TargetAnnotationKey: "150",
			TargetUtilizationPercentageKey: "70", TargetBurstCapacityKey: "-1",
			WindowAnnotationKey: "60s", PanicWindowPercentageAnnotationKey: "10",
			PanicThresholdPercentageAnnotationKey: "200", MinScaleAnnotationKey: "1",
			MaxScaleAnnotationKey: "10", InitialScaleAnnotationKey: "2",
			ScaleDownDelayAnnotationKey: "15m", ScaleToZeroPodRetentionPeriodKey: "1m",
			ActivationScaleKey: "3", "unrelated/key": "x",
		},
	}, {
		name: "min above max",
		in:   map[string]string{MinScaleAnnotationKey: "5", MaxScaleAnnotationKey: "2"},
		want: "invalid value: max-scale=2 is less than min-scale=5: metadata.annotations.autoscaling.knative.dev/max-scale",
	}, {
		name: "max zero is unbounded",
		in:   map[string]string{MinScaleAnnotationKey: "5", MaxScaleAnnotationKey: "0"},
	}, {
		name: "negative min",
		in:   map[string]string{MinScaleAnnotationKey: "-1"},
		want: "expected 0 <= -1 <= 2147483647: metadata.annotations.autoscaling.knative.dev/min-scale",
	}, {
		name: "min not an integer",
		in:   map[string]string{"autoscaling.knative.dev/minScale": "one"},
		want: "invalid value: one: metadata.annotations.autoscaling.knative.dev/minScale\nmust be an integer",
	}, {
		name: "both spellings",
		in:   map[string]string{MinScaleAnnotationKey: "1", "autoscaling.knative.dev/minScale": "1"},
		want: "expected exactly one, got both: metadata.annotations.autoscaling.knative.dev/min-scale, metadata.annotations.autoscaling.knative.dev/minScale",
	}, {
		name: "max above limit",
		opts: Options{MaxScaleLimit: 10},
		in:   map[string]string{MaxScaleAnnotationKey: "11"},
		want: "expected 1 <= 11 <= 10: metadata.annotations.autoscaling.knative.dev/max-scale",
	}, {
		name: "window too short",
		in:   map[string]string{WindowAnnotationKey: "5s"},
		want: "expected 6s <= 5s <= 1h0m0s: metadata.annotations.autoscaling.knative.dev/window",
	}, {
		name: "window too long",
		in:   map[string]string{WindowAnnotationKey: "2h"},
		want: "expected 6s <= 2h <= 1h0m0s: metadata.annotations.autoscaling.knative.dev/window",
	}, {
		name: "window fractional",
		in:   map[string]string{WindowAnnotationKey: "6500ms"},
		want: "invalid value: 6500ms: metadata.annotations.autoscaling.knative.dev/window\nmust be a whole number of seconds",
	}, {
		name: "window not a duration",
		in:   map[string]string{WindowAnnotationKey: "sixty"},
		want: "invalid value: sixty: metadata.annotations.autoscaling.knative.dev/window\nmust be a duration such as 60s",
	}, {
		name: "window on hpa",
		in:   map[string]string{ClassAnnotationKey: HPA, MetricAnnotationKey: CPU, WindowAnnotationKey: "60s"},
		want: "only applies to class kpa.autoscaling.knative.dev: metadata.annotations.autoscaling.knative.dev/window",
	}, {
		name: "panic threshold low",
		in:   map[string]string{PanicThresholdPercentageAnnotationKey: "100"},
		want: "expected 110 <= 100 <= 1000: metadata.annotations.autoscaling.knative.dev/panic-threshold-percentage",
	}, {
		name: "panic threshold high",
		in:   map[string]string{PanicThresholdPercentageAnnotationKey: "1001"},
		want: "expected 110 <= 1001 <= 1000: metadata.annotations.autoscaling.knative.dev/panic-threshold-percentage",
	}, {
		name: "panic window percentage",
		in:   map[string]string{PanicWindowPercentageAnnotationKey: "0.5"},
		want: "expected 1 <= 0.5 <= 100: metadata.annotations.autoscaling.knative.dev/panic-window-percentage",
	}, {
		name: "target too small",
		in:   map[string]string{TargetAnnotationKey: "0.001"},
		want: "expected 0.01 <= 0.001 <= 3.4028234663852886e+38: metadata.annotations.autoscaling.knative.dev/target",
	}, {
		name: "target not a number",
		in:   map[string]string{TargetAnnotationKey: "NaN"},
		want: "invalid value: NaN: metadata.annotations.autoscaling.knative.dev/target\nmust be a number",
	}, {
		name: "utilization",
		in:   map[string]string{TargetUtilizationPercentageKey: "101"},
		want: "expected 1 <= 101 <= 100: metadata.annotations.autoscaling.knative.dev/target-utilization-percentage",
	}, {
		name: "burst capacity",
		in:   map[string]string{TargetBurstCapacityKey: "-2"},
		want: "expected 0 <= -2 <= 3.4028234663852886e+38: metadata.annotations.autoscaling.knative.dev/target-burst-capacity",
	}, {
		name: "unknown class",
		in:   map[string]string{ClassAnnotationKey: "foo"},
		want: "invalid value: foo: metadata.annotations.autoscaling.knative.dev/class\nmust be kpa.autoscaling.knative.dev or hpa.autoscaling.knative.dev",
	}, {
		name: "kpa with cpu",
		in:   map[string]string{MetricAnnotationKey: CPU},
		want: "invalid value: cpu: metadata.annotations.autoscaling.knative.dev/metric\nmust be concurrency or rps for class kpa.autoscaling.knative.dev",
	}, {
		name: "hpa custom metric",
		in:   map[string]string{ClassAnnotationKey: HPA, MetricAnnotationKey: "queue-depth"},
	}, {
		name: "hpa with cpu",
		in:   map[string]string{ClassAnnotationKey: HPA, MetricAnnotationKey: CPU, TargetAnnotationKey: "50"},
	}, {
		name: "hpa with memory",
		in:   map[string]string{ClassAnnotationKey: HPA, MetricAnnotationKey: Memory, TargetAnnotationKey: "200"},
	}, {
		name: "initial scale zero refused",
		in:   map[string]string{InitialScaleAnnotationKey: "0"},
		want: "expected 1 <= 0 <= 2147483647: metadata.annotations.autoscaling.knative.dev/initial-scale",
	}, {
		name: "initial scale zero allowed",
		opts: Options{AllowZeroInitialScale: true},
		in:   map[string]string{InitialScaleAnnotationKey: "0"},
	}, {
		name: "activation above max",
		in:   map[string]string{ActivationScaleKey: "5", MaxScaleAnnotationKey: "3"},
		want: "invalid value: activation-scale=5 is greater than max-scale=3: metadata.annotations.autoscaling.knative.dev/activation-scale",
	}, {
		name: "scale down delay",
		in:   map[string]string{ScaleDownDelayAnnotationKey: "-1s", ScaleToZeroPodRetentionPeriodKey: "2h"},
		want: "expected 0s <= -1s <= 1h0m0s: metadata.annotations.autoscaling.knative.dev/scale-down-delay\n" +
			"expected 0s <= 2h <= 1h0m0s: metadata.annotations.autoscaling.knative.dev/scale-to-zero-pod-retention-period",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.opts.ValidateAnnotations(tc.in).Error()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ValidateAnnotations (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPackageValidateAnnotationsUsesDefaults(t *testing.T) {
	if err := ValidateAnnotations(map[string]string{InitialScaleAnnotationKey: "0"}); err == nil {
		t.Error("initial-scale 0 must be refused with the shipped settings")
	}
}

func TestAnnotationGet(t *testing.T) {
	k, v, ok := MinScaleAnnotation.Get(map[string]string{"autoscaling.knative.dev/minScale": "3"})
	if k != "autoscaling.knative.dev/minScale" || v != "3" || !ok {
		t.Errorf("Get = %q, %q, %v", k, v, ok)
	}
	if _, _, ok := MaxScaleAnnotation.Get(nil); ok {
		t.Error("Get on nil map")
	}
}
