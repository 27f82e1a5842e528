package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultMenuIsFargates(t *testing.T) {
	s := NewServerless()
	gb := func(lo, hi, step int64) []int64 {
		var out []int64
		for g := lo; g <= hi; g += step {
			out = append(out, g*1024)
		}
		return out
	}
	want := []MenuRow{
		{250, []int64{512, 1024, 2048}},
		{500, gb(1, 4, 1)},
		{1000, gb(2, 8, 1)},
		{2000, gb(4, 16, 1)},
		{4000, gb(8, 30, 1)},
		{8000, gb(16, 60, 4)},
		{16000, gb(32, 120, 8)},
	}
	if diff := cmp.Diff(want, s.Menu); diff != "" {
		t.Errorf("menu (-want +got):\n%s", diff)
	}
	if s.MemoryOverheadMiB != 256 || s.EphemeralStorageDefaultBytes != 20<<30 || s.EphemeralStorageMaxBytes != 175<<30 {
		t.Errorf("defaults: %+v", s)
	}
}

func TestServerlessFromMap(t *testing.T) {
	s, err := NewServerlessFromMap(map[string]string{
		"menu":                      "0.1: 0.125, 0.25; 0.5: 0.5-1/0.25",
		"memory-overhead":           "32Mi",
		"ephemeral-storage-default": "1Gi",
		"ephemeral-storage-max":     "2Gi",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &Serverless{
		Menu:                         []MenuRow{{100, []int64{128, 256}}, {500, []int64{512, 768, 1024}}},
		MemoryOverheadMiB:            32,
		EphemeralStorageDefaultBytes: 1 << 30,
		EphemeralStorageMaxBytes:     2 << 30,
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestServerlessRefusesNamingTheKey(t *testing.T) {
	for _, tc := range []struct {
		data    map[string]string
		wantErr string
	}{
		{map[string]string{"menu": ""}, "config-serverless: menu: no size"},
		{map[string]string{"menu": "1 2 3"}, `config-serverless: menu: entry 1 "1 2 3": want <vCPU>: <GB>`},
		{map[string]string{"menu": "-1: 2"}, `config-serverless: menu: entry 1 "-1: 2": vCPU "-1" is not a positive number`},
		{map[string]string{"menu": "1: 2\n0.5: 1"}, "config-serverless: menu: entry 2 \"0.5: 1\": vCPU sizes must grow"},
		{map[string]string{"menu": "1: 8-2"}, "config-serverless: menu: entry 1 \"1: 8-2\": memory \"8-2\": the range ends before it starts"},
		{map[string]string{"menu": "1: lots"}, `config-serverless: menu: entry 1 "1: lots": memory "lots" is not a positive number of GB`},
		{map[string]string{"memory-overhead": "much"}, `config-serverless: memory-overhead: "much" is not a quantity`},
		{map[string]string{"memory-overhead": "-1Mi"}, "config-serverless: memory-overhead: -1Mi must be in [0, 64Gi]"},
		{map[string]string{"ephemeral-storage-default": "30Gi", "ephemeral-storage-max": "20Gi"}, "config-serverless: ephemeral-storage-max 20Gi is less than ephemeral-storage-default 30Gi"},
		{map[string]string{"menus": "1: 2"}, "config-serverless: menus: unknown key"},
	} {
		err := NewConfig().Apply(ServerlessConfigName, tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("Apply(%v) = %v, want an error containing %q", tc.data, err, tc.wantErr)
		}
	}
}
