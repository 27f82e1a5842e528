package config

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNewDefaultsFromMap(t *testing.T) {
	tr := true
	tests := []struct {
		name    string
		in      map[string]string
		want    *Defaults
		wantErr bool
	}{{
		name: "empty keeps shipped values",
		want: NewDefaults(),
	}, {
		name: "overrides",
		in: map[string]string{
			"revision-timeout-seconds": "120", "max-revision-timeout-seconds": "900",
			"container-concurrency": "10", "container-concurrency-max-limit": "50",
			"container-name-template": "app", "enable-service-links": "true",
			"revision-response-start-timeout-seconds": "30", "revision-idle-timeout-seconds": "60",
		},
		want: &Defaults{RevisionTimeoutSeconds: 120, MaxRevisionTimeoutSeconds: 900,
			RevisionResponseStartTimeoutSeconds: 30, RevisionIdleTimeoutSeconds: 60,
			ContainerConcurrency: 10, ContainerConcurrencyMaxLimit: 50,
			UserContainerName: "app", InitContainerName: DefaultInitContainerName, EnableServiceLinks: &tr},
	}, {
		name:    "not a number",
		in:      map[string]string{"revision-timeout-seconds": "soon"},
		wantErr: true,
	}, {
		name:    "max below default",
		in:      map[string]string{"max-revision-timeout-seconds": "100"},
		wantErr: true,
	}, {
		name:    "concurrency above limit",
		in:      map[string]string{"container-concurrency": "2000"},
		wantErr: true,
	}, {
		name:    "bad service links",
		in:      map[string]string{"enable-service-links": "maybe"},
		wantErr: true,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NewDefaultsFromMap(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("NewDefaultsFromMap (-want +got):\n%s", diff)
			}
		})
	}
}

func TestContainerName(t *testing.T) {
	d := NewDefaults()
	if got := d.ContainerName(0, 1); got != "user-container" {
		t.Errorf("single = %q", got)
	}
	if got := d.ContainerName(1, 2); got != "user-container-1" {
		t.Errorf("second of two = %q", got)
	}
}

func TestNewFeaturesFromMap(t *testing.T) {
	got, err := NewFeaturesFromMap(map[string]string{
		"kubernetes.podspec-nodeselector": "enabled",
		"kubernetes.podspec-affinity":     "Allowed",
		"kubernetes.podspec-tolerations":  "disabled",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &Features{PodSpecNodeSelector: true, PodSpecAffinity: true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("NewFeaturesFromMap (-want +got):\n%s", diff)
	}
	if _, err := NewFeaturesFromMap(map[string]string{"kubernetes.podspec-affinity": "yes"}); err == nil {
		t.Error("want an error for an unknown flag value")
	}
}

func TestContext(t *testing.T) {
	ctx := context.Background()
	if FromContext(ctx) != nil {
		t.Error("bare context carries no config")
	}
	got := FromContextOrDefaults(ctx)
	if diff := cmp.Diff(NewConfig(), got); diff != "" {
		t.Errorf("FromContextOrDefaults (-want +got):\n%s", diff)
	}
	d := &Defaults{RevisionTimeoutSeconds: 7}
	got = FromContextOrDefaults(ToContext(ctx, &Config{Defaults: d}))
	if got.Defaults != d || got.Features == nil {
		t.Error("carried defaults must be returned, missing features filled")
	}
}

func TestAutoscalerTargetPercentage(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{in: "70", want: 0.7},
		{in: "100", want: 1},
		{in: "0.5", want: 0.5}, // an older manifest's fraction, as Knative reads it
		{in: "1", want: 1},
		{in: "0", wantErr: true},
		{in: "-5", wantErr: true},
		{in: "101", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			a, err := NewAutoscalerFromMap(map[string]string{"container-concurrency-target-percentage": tc.in})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && a.ContainerConcurrencyTargetFraction != tc.want {
				t.Errorf("fraction = %v, want %v", a.ContainerConcurrencyTargetFraction, tc.want)
			}
		})
	}
}

func TestPodAutoscalerClassDefault(t *testing.T) {
	for in, want := range map[string]string{
		"":                            "kpa.autoscaling.knative.dev",
		"hpa.autoscaling.knative.dev": "hpa.autoscaling.knative.dev",
		"HPA.autoscaling.knative.dev": "hpa.autoscaling.knative.dev",
		"kpa.autoscaling.knative.dev": "kpa.autoscaling.knative.dev",
	} {
		data := map[string]string{}
		if in != "" {
			data["pod-autoscaler-class"] = in
		}
		a, err := NewAutoscalerFromMap(data)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if a.PodAutoscalerClass != want {
			t.Errorf("pod-autoscaler-class %q → %q, want %q", in, a.PodAutoscalerClass, want)
		}
	}
}
