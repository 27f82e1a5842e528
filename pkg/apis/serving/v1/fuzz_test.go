package v1

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/gantry-run/gantry/pkg/apis"
)

// fuzzable is what the webhook does with every object it admits.
type fuzzable interface {
	SetDefaults(context.Context)
	Validate(context.Context) *apis.FieldError
}

// addSeeds adds the testdata samples and some hand-written edge cases.
func addSeeds(f *testing.F, extra ...string) {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		y, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		j, err := yaml.YAMLToJSON(y)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(j)
	}
	for _, s := range extra {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"spec":{"template":{"spec":{"containers":[{},{},{"ports":[{},{}]}]}}}}`))
}

// fuzzAdmission decodes data into obj and runs defaulting and validation as
// the webhook would, on create and on an update against itself.
func fuzzAdmission(t *testing.T, data []byte, newObj func() fuzzable) {
	obj := newObj()
	if err := json.Unmarshal(data, obj); err != nil {
		return
	}
	ctx := apis.WithinCreate(context.Background())
	obj.SetDefaults(ctx)
	_ = obj.Validate(ctx).Error()

	base := newObj()
	if err := json.Unmarshal(data, base); err != nil {
		t.Fatalf("second decode of the same input failed: %v", err)
	}
	upd := apis.WithinUpdate(context.Background(), base)
	_ = obj.Validate(upd).Error()

	// Defaulting is idempotent: a second pass changes nothing.
	once, err := json.Marshal(obj)
	if err != nil {
		t.Fatalf("encoding a decoded object: %v", err)
	}
	obj.SetDefaults(ctx)
	twice, _ := json.Marshal(obj)
	if string(once) != string(twice) {
		t.Errorf("SetDefaults is not idempotent:\n%s\n%s", once, twice)
	}
}

func FuzzServiceValidate(f *testing.F) {
	addSeeds(f,
		`{"metadata":{"name":"a"},"spec":{"traffic":[{"percent":9223372036854775807},{"percent":9223372036854775807}]}}`,
		`{"metadata":{"name":"a","annotations":{"autoscaling.knative.dev/min-scale":"-9"}},"spec":{"template":{"metadata":{"name":"a-b","annotations":{"autoscaling.knative.dev/window":"1ns"}}}}}`,
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzAdmission(t, data, func() fuzzable { return &Service{} })
	})
}

func FuzzConfigurationValidate(f *testing.F) {
	addSeeds(f, `{"metadata":{"generateName":"x-"},"spec":{"template":{"spec":{"volumes":[{"name":"v"}]}}}}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzAdmission(t, data, func() fuzzable { return &Configuration{} })
	})
}

func FuzzRevisionValidate(f *testing.F) {
	addSeeds(f, `{"metadata":{"name":"r"},"spec":{"containers":[{"image":"i","readinessProbe":{"httpGet":{"port":"http"}}}]}}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzAdmission(t, data, func() fuzzable { return &Revision{} })
	})
}

func FuzzRouteValidate(f *testing.F) {
	addSeeds(f, `{"metadata":{"name":"r"},"spec":{"traffic":[{"tag":"a","percent":-1},{"tag":"a","url":"http://x"}]}}`)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzAdmission(t, data, func() fuzzable { return &Route{} })
	})
}
