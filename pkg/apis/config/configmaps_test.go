package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// TestExamplesAreTheDefaults: every ConfigMap's _example block, applied as data, parses and
// yields exactly the shipped defaults, so the documentation cannot drift from the code.
func TestExamplesAreTheDefaults(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			var data map[string]string
			if err := yaml.Unmarshal([]byte(Example(name)), &data); err != nil {
				t.Fatalf("example is not YAML: %v", err)
			}
			if len(data) == 0 {
				t.Fatal("example lists no key")
			}
			got := NewConfig()
			if err := got.Apply(name, data); err != nil {
				t.Fatalf("Apply(example): %v", err)
			}
			if diff := cmp.Diff(NewConfig(), got); diff != "" {
				t.Errorf("example differs from the defaults (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyRefusesNamingTheKey(t *testing.T) {
	tests := []struct {
		name    string
		cm      string
		data    map[string]string
		wantErr string
	}{
		{"defaults number", DefaultsConfigName, map[string]string{"revision-timeout-seconds": "soon"}, `config-defaults: revision-timeout-seconds: "soon" is not an integer`},
		{"defaults unknown key", DefaultsConfigName, map[string]string{"revision-timout-seconds": "5"}, "config-defaults: revision-timout-seconds: unknown key"},
		{"defaults unsupported", DefaultsConfigName, map[string]string{"revision-cpu-request": "100m"}, `config-defaults: revision-cpu-request: "100m" is not supported by Gantry`},
		{"features value", FeaturesConfigName, map[string]string{"kubernetes.podspec-affinity": "yes"}, `config-features: kubernetes.podspec-affinity: "yes" is not enabled, allowed or disabled`},
		{"features unknown", FeaturesConfigName, map[string]string{"kubernetes.podspec-fieldref": "enabled"}, "config-features: kubernetes.podspec-fieldref: unknown key"},
		{"autoscaler window", AutoscalerConfigName, map[string]string{"stable-window": "2s"}, "config-autoscaler: stable-window: 2s must be in [6s, 1h0m0s]"},
		{"autoscaler duration", AutoscalerConfigName, map[string]string{"scale-down-delay": "later"}, `config-autoscaler: scale-down-delay: "later" is not a duration`},
		{"autoscaler tbc", AutoscalerConfigName, map[string]string{"target-burst-capacity": "-2"}, "config-autoscaler: target-burst-capacity: -2 must be non-negative, or -1"},
		{"autoscaler rate", AutoscalerConfigName, map[string]string{"max-scale-down-rate": "1"}, "config-autoscaler: max-scale-down-rate: 1 must be greater than 1"},
		{"autoscaler initial", AutoscalerConfigName, map[string]string{"initial-scale": "0"}, "config-autoscaler: initial-scale: 0 must be at least 1"},
		{"autoscaler min>max", AutoscalerConfigName, map[string]string{"min-scale": "5", "max-scale": "2"}, "config-autoscaler: min-scale: 5 must be in [0, max-scale 2]"},
		{"autoscaler class", AutoscalerConfigName, map[string]string{"pod-autoscaler-class": "custom.example.com"}, `config-autoscaler: pod-autoscaler-class: "custom.example.com" is not supported by Gantry`},
		{"network template", NetworkConfigName, map[string]string{"domain-template": "{{.Nome}}.x"}, "config-network: domain-template:"},
		{"network tls", NetworkConfigName, map[string]string{"external-domain-tls": "Enabled"}, `config-network: external-domain-tls: "Enabled" is not supported by Gantry`},
		{"deployment quantity", DeploymentConfigName, map[string]string{"queue-sidecar-cpu-request": "lots"}, `config-deployment: queue-sidecar-cpu-request: "lots" is not a quantity`},
		{"deployment deadline", DeploymentConfigName, map[string]string{"progress-deadline": "0s"}, "config-deployment: progress-deadline: 0s must be positive"},
		{"not ours", "config-domain", nil, "config-domain is not a configuration ConfigMap"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewConfig()
			err := c.Apply(tc.cm, tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Apply error = %v, want it to contain %q", err, tc.wantErr)
			}
			if diff := cmp.Diff(NewConfig(), c); diff != "" {
				t.Errorf("a refused ConfigMap changed the config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApplyOverrides(t *testing.T) {
	c := NewConfig()
	if err := c.Apply(AutoscalerConfigName, map[string]string{"stable-window": "2m", "container-concurrency-target-percentage": "50", "_example": "ignored: x"}); err != nil {
		t.Fatal(err)
	}
	if c.Autoscaler.StableWindow != 2*time.Minute || c.Autoscaler.ContainerConcurrencyTargetFraction != 0.5 {
		t.Errorf("autoscaler = %+v", c.Autoscaler)
	}
	if err := c.Apply(DeploymentConfigName, map[string]string{"queue-sidecar-image": "ghcr.io/gantry/queue:v1", "registries-skipping-tag-resolving": "a.io, b.io"}); err != nil {
		t.Fatal(err)
	}
	if c.Deployment.QueueSidecarImage != "ghcr.io/gantry/queue:v1" || !cmp.Equal(c.Deployment.RegistriesSkippingTagResolving, []string{"a.io", "b.io"}) {
		t.Errorf("deployment = %+v", c.Deployment)
	}
	if err := c.Apply(NetworkConfigName, map[string]string{"domain-template": "{{.Name}}-{{.Namespace}}.{{.Domain}}"}); err != nil {
		t.Fatal(err)
	}
	if h, _ := c.Network.Host("hello", "default", "example.com", nil); h != "hello-default.example.com" {
		t.Errorf("host = %q", h)
	}
	if n, _ := c.Network.TagName("v1", "hello"); n != "v1-hello" {
		t.Errorf("tag name = %q", n)
	}
}
