package scaling

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	"github.com/gantry-run/gantry/pkg/apis/config"
)

// shipped is what NewSettings makes of Knative's defaults for a revision with no annotations
// and containerConcurrency 0.
func shipped() Settings {
	return Settings{
		Metric:                 autoscaling.Concurrency,
		Target:                 70,
		Total:                  100,
		TargetBurstCapacity:    211,
		ActivatorCapacity:      100,
		PanicThreshold:         2,
		StableWindow:           60 * time.Second,
		PanicWindow:            6 * time.Second,
		MaxScaleUpRate:         1000,
		MaxScaleDownRate:       2,
		InitialScale:           1,
		ActivationScale:        1,
		EnableScaleToZero:      true,
		ScaleToZeroGracePeriod: 30 * time.Second,
	}
}

func TestNewSettings(t *testing.T) {
	tests := []struct {
		name    string
		cfg     map[string]string // config-autoscaler data
		ann     map[string]string
		cc      int64
		want    func(*Settings)
		wantErr string
	}{{
		name: "knative's defaults",
		want: func(*Settings) {},
	}, {
		name: "containerConcurrency is the total",
		cc:   10,
		want: func(s *Settings) { s.Total, s.Target = 10, 7 },
	}, {
		name: "target annotation without containerConcurrency",
		ann:  map[string]string{autoscaling.TargetAnnotationKey: "50"},
		want: func(s *Settings) { s.Total, s.Target = 50, 35 },
	}, {
		name: "target annotation above containerConcurrency",
		ann:  map[string]string{autoscaling.TargetAnnotationKey: "50"},
		cc:   10,
		want: func(s *Settings) { s.Total, s.Target = 10, 7 },
	}, {
		name: "target annotation below containerConcurrency",
		ann:  map[string]string{autoscaling.TargetAnnotationKey: "4"},
		cc:   10,
		want: func(s *Settings) { s.Total, s.Target = 4, 2.8 },
	}, {
		name: "target utilisation from the ConfigMap",
		cfg:  map[string]string{"container-concurrency-target-percentage": "50"},
		want: func(s *Settings) { s.Target = 50 },
	}, {
		name: "target utilisation annotation",
		ann:  map[string]string{autoscaling.TargetUtilizationPercentageKey: "100", autoscaling.TargetAnnotationKey: "10"},
		want: func(s *Settings) { s.Total, s.Target = 10, 10 },
	}, {
		name: "target never below the minimum",
		ann:  map[string]string{autoscaling.TargetAnnotationKey: "0.01", autoscaling.TargetUtilizationPercentageKey: "50"},
		want: func(s *Settings) { s.Total, s.Target = 0.01, autoscaling.TargetMin },
	}, {
		name: "rps ignores containerConcurrency",
		ann:  map[string]string{autoscaling.MetricAnnotationKey: autoscaling.RPS},
		cc:   10,
		want: func(s *Settings) { s.Metric, s.Total, s.Target = autoscaling.RPS, 200, 140 },
	}, {
		name: "rps target annotation",
		ann:  map[string]string{autoscaling.MetricAnnotationKey: autoscaling.RPS, autoscaling.TargetAnnotationKey: "100"},
		cc:   10,
		want: func(s *Settings) { s.Metric, s.Total, s.Target = autoscaling.RPS, 100, 70 },
	}, {
		name: "rps default from the ConfigMap",
		cfg:  map[string]string{"requests-per-second-target-default": "10"},
		ann:  map[string]string{autoscaling.MetricAnnotationKey: autoscaling.RPS},
		want: func(s *Settings) { s.Metric, s.Total, s.Target = autoscaling.RPS, 10, 7 },
	}, {
		name: "windows",
		ann:  map[string]string{autoscaling.WindowAnnotationKey: "20s", autoscaling.PanicWindowPercentageAnnotationKey: "20"},
		want: func(s *Settings) { s.StableWindow, s.PanicWindow = 20*time.Second, 4*time.Second },
	}, {
		name: "panic window rounds to seconds",
		ann:  map[string]string{autoscaling.WindowAnnotationKey: "25s", autoscaling.PanicWindowPercentageAnnotationKey: "15"},
		want: func(s *Settings) { s.StableWindow, s.PanicWindow = 25*time.Second, 4*time.Second },
	}, {
		name: "panic window at least a bucket",
		ann:  map[string]string{autoscaling.WindowAnnotationKey: "6s", autoscaling.PanicWindowPercentageAnnotationKey: "1"},
		want: func(s *Settings) { s.StableWindow, s.PanicWindow = 6*time.Second, time.Second },
	}, {
		name: "panic window from a ConfigMap stable window",
		cfg:  map[string]string{"stable-window": "2m", "panic-window-percentage": "5"},
		want: func(s *Settings) { s.StableWindow, s.PanicWindow = 2*time.Minute, 6*time.Second },
	}, {
		name: "every other annotation",
		ann: map[string]string{
			autoscaling.TargetBurstCapacityKey:                "-1",
			autoscaling.PanicThresholdPercentageAnnotationKey: "300",
			autoscaling.MinScaleAnnotationKey:                 "2",
			autoscaling.MaxScaleAnnotationKey:                 "9",
			autoscaling.InitialScaleAnnotationKey:             "4",
			autoscaling.ActivationScaleKey:                    "3",
			autoscaling.ScaleDownDelayAnnotationKey:           "15s",
			autoscaling.ScaleToZeroPodRetentionPeriodKey:      "1m",
		},
		want: func(s *Settings) {
			s.TargetBurstCapacity, s.PanicThreshold = -1, 3
			s.MinScale, s.MaxScale, s.InitialScale, s.ActivationScale = 2, 9, 4, 3
			s.ScaleDownDelay, s.ScaleToZeroPodRetentionPeriod = 15*time.Second, time.Minute
		},
	}, {
		name: "ConfigMap values the annotations override",
		cfg: map[string]string{
			"min-scale": "1", "max-scale": "5", "initial-scale": "2", "scale-down-delay": "10s",
			"scale-to-zero-pod-retention-period": "20s", "scale-to-zero-grace-period": "40s",
			"enable-scale-to-zero": "false", "target-burst-capacity": "0", "activator-capacity": "50",
			"max-scale-up-rate": "3", "max-scale-down-rate": "4", "panic-threshold-percentage": "150",
		},
		ann: map[string]string{autoscaling.MinScaleAnnotationKey: "0", autoscaling.MaxScaleAnnotationKey: "0"},
		want: func(s *Settings) {
			s.InitialScale, s.ScaleDownDelay = 2, 10*time.Second
			s.ScaleToZeroPodRetentionPeriod, s.ScaleToZeroGracePeriod = 20*time.Second, 40*time.Second
			s.EnableScaleToZero, s.TargetBurstCapacity, s.ActivatorCapacity = false, 0, 50
			s.MaxScaleUpRate, s.MaxScaleDownRate, s.PanicThreshold = 3, 4, 1.5
		},
	}, {
		name: "older spelling",
		ann:  map[string]string{"autoscaling.knative.dev/minScale": "3"},
		want: func(s *Settings) { s.MinScale = 3 },
	}, {
		name: "initial scale zero not allowed",
		ann:  map[string]string{autoscaling.InitialScaleAnnotationKey: "0"},
		want: func(*Settings) {},
	}, {
		name: "initial scale zero allowed",
		cfg:  map[string]string{"allow-zero-initial-scale": "true"},
		ann:  map[string]string{autoscaling.InitialScaleAnnotationKey: "0"},
		want: func(s *Settings) { s.InitialScale = 0 },
	}, {
		name: "activation scale of one changes nothing",
		ann:  map[string]string{autoscaling.ActivationScaleKey: "1"},
		want: func(*Settings) {},
	}, {
		name: "values that do not parse are named and left out",
		ann: map[string]string{
			autoscaling.TargetAnnotationKey:         "lots",
			autoscaling.MinScaleAnnotationKey:       "-1",
			autoscaling.WindowAnnotationKey:         "1 minute",
			autoscaling.ScaleDownDelayAnnotationKey: "-5s",
			autoscaling.MaxScaleAnnotationKey:       "4",
		},
		want: func(s *Settings) { s.MaxScale = 4 },
		wantErr: `autoscaling.knative.dev/target: "lots" is not a number` + "\n" +
			`autoscaling.knative.dev/window: "1 minute" is not a non-negative duration` + "\n" +
			`autoscaling.knative.dev/min-scale: "-1" is not a non-negative integer` + "\n" +
			`autoscaling.knative.dev/scale-down-delay: "-5s" is not a non-negative duration`,
	}, {
		name:    "a metric the KPA does not scale on",
		ann:     map[string]string{autoscaling.MetricAnnotationKey: autoscaling.CPU},
		want:    func(*Settings) {},
		wantErr: `autoscaling.knative.dev/metric: "cpu" is not a metric the KPA scales on (concurrency or rps)`,
	}, {
		name:    "not a finite number",
		ann:     map[string]string{autoscaling.TargetBurstCapacityKey: "Inf"},
		want:    func(*Settings) {},
		wantErr: `autoscaling.knative.dev/target-burst-capacity: "Inf" is not a number`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.NewAutoscalerFromMap(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			want := shipped()
			tc.want(&want)
			got, err := NewSettings(cfg, tc.ann, tc.cc)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff(tc.wantErr, gotErr); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("NewSettings (-want +got):\n%s", diff)
			}
		})
	}
}
