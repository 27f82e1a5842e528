package v1

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/gantry-run/gantry/pkg/apis"
)

// object is what every serving type offers the webhook.
type object interface {
	runtime.Object
	SetDefaults(context.Context)
	Validate(context.Context) *apis.FieldError
}

func newObject(kind string) runtime.Object {
	switch kind {
	case "Service":
		return &Service{}
	case "Configuration":
		return &Configuration{}
	case "Revision":
		return &Revision{}
	case "Route":
		return &Route{}
	}
	return nil
}

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	y, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatalf("converting %s: %v", name, err)
	}
	return j
}

// decodeStrict decodes j into a new object of its kind, refusing unknown
// fields so a misspelt JSON tag shows up as a failure.
func decodeStrict(j []byte) (runtime.Object, error) {
	var tm struct{ Kind string }
	if err := json.Unmarshal(j, &tm); err != nil {
		return nil, err
	}
	obj := newObject(tm.Kind)
	if obj == nil {
		return nil, fmt.Errorf("unknown kind %q", tm.Kind)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// missing returns the paths of leaves of want that got lacks or changes.
func missing(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{path}
		}
		var out []string
		for k, v := range w {
			out = append(out, missing(path+"."+k, v, g[k])...)
		}
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{path}
		}
		var out []string
		for i := range w {
			out = append(out, missing(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return out
	default:
		if !cmp.Equal(want, got) {
			return []string{path}
		}
		return nil
	}
}

func TestSamplesRoundTrip(t *testing.T) {
	for _, name := range []string{
		"helloworld-go.yaml", "traffic-split.yaml", "autoscale.yaml",
		"revision.yaml", "route.yaml", "configuration.yaml",
	} {
		t.Run(name, func(t *testing.T) {
			in := readSample(t, name)
			obj, err := decodeStrict(in)
			if err != nil {
				t.Fatalf("decoding: %v", err)
			}
			out, err := json.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			var inMap, outMap map[string]any
			if err := json.Unmarshal(in, &inMap); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(out, &outMap); err != nil {
				t.Fatal(err)
			}
			if lost := missing("", inMap, outMap); len(lost) > 0 {
				t.Errorf("re-encoding lost or changed %v\n%s", lost, out)
			}
			again, err := decodeStrict(out)
			if err != nil {
				t.Fatalf("decoding the re-encoded object: %v", err)
			}
			if diff := cmp.Diff(obj, again); diff != "" {
				t.Errorf("second round trip (-first +second):\n%s", diff)
			}
			copied := obj.DeepCopyObject()
			if diff := cmp.Diff(obj, copied); diff != "" {
				t.Errorf("DeepCopyObject (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSamplesAreValid(t *testing.T) {
	for _, name := range []string{
		"helloworld-go.yaml", "traffic-split.yaml", "autoscale.yaml",
		"revision.yaml", "route.yaml", "configuration.yaml",
	} {
		t.Run(name, func(t *testing.T) {
			obj, err := decodeStrict(readSample(t, name))
			if err != nil {
				t.Fatal(err)
			}
			o := obj.(object)
			ctx := context.Background()
			o.SetDefaults(ctx)
			if err := o.Validate(ctx); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestTrafficSplitSample(t *testing.T) {
	obj, err := decodeStrict(readSample(t, "traffic-split.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s := obj.(*Service)
	var tags []string
	for _, tt := range s.Spec.Traffic {
		tags = append(tags, fmt.Sprintf("%s=%s/%d", tt.Tag, tt.RevisionName, *tt.Percent))
	}
	want := []string{"current=hello-v1/50", "candidate=hello-v2/50", "latest=/0"}
	if diff := cmp.Diff(want, tags); diff != "" {
		t.Errorf("traffic (-want +got):\n%s", diff)
	}
	if got := s.Status.Traffic[0].URL.String(); got != "http://current-hello.default.localhost" {
		t.Errorf("status.traffic[0].url = %q", got)
	}
	if got := s.Status.Address.URL.Host; got != "hello.default.svc.cluster.local" {
		t.Errorf("status.address.url host = %q", got)
	}
	if !s.Status.IsReady() {
		t.Error("sample status is Ready")
	}
}
