package config

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func TestNewMeteringFromMap(t *testing.T) {
	m, err := NewMeteringFromMap(map[string]string{"vcpu-hour": "0.05", "ephemeral-storage-included-gb": "30", ExampleKey: "x"})
	if err != nil {
		t.Fatal(err)
	}
	want := NewMetering()
	want.VCPUHour, want.EphemeralStorageIncludedGB = 0.05, 30
	if *m != *want {
		t.Errorf("got %+v, want %+v", m, want)
	}
	for data, wantErr := range map[string]string{
		"gb-hour=cheap":    `gb-hour: "cheap" is not a number`,
		"vcpu-hour=-1":     "vcpu-hour: -1 is not a price",
		"vcpu-hour=NaN":    "vcpu-hour: NaN is not a price",
		"vcpu-hours=1":     "vcpu-hours: unknown key",
		"gb-hour=+Inf":     "gb-hour: +Inf is not a price",
		"gb-hour=0.000001": "",
	} {
		k, v, _ := strings.Cut(data, "=")
		_, err := NewMeteringFromMap(map[string]string{k: v})
		if wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", data, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%s: err = %v, want %q", data, err, wantErr)
		}
	}
	// Through Apply, as the webhook validates: the error names the ConfigMap.
	if err := NewConfig().Apply(MeteringConfigName, map[string]string{"gb-hour": "x"}); err == nil || !strings.HasPrefix(err.Error(), "config-metering: gb-hour:") {
		t.Errorf("Apply = %v", err)
	}
	// The example parses to the defaults.
	var ex map[string]string
	if err := yaml.Unmarshal([]byte(Example(MeteringConfigName)), &ex); err != nil {
		t.Fatal(err)
	}
	if m, err := NewMeteringFromMap(ex); err != nil || *m != *NewMetering() {
		t.Errorf("example parses to %+v, %v", m, err)
	}
}
