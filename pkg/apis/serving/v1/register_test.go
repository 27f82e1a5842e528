package v1

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

func TestAddToScheme(t *testing.T) {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"Service", "ServiceList", "Configuration", "ConfigurationList",
		"Revision", "RevisionList", "Route", "RouteList"} {
		if !s.Recognizes(SchemeGroupVersion.WithKind(kind)) {
			t.Errorf("scheme does not recognise %s", kind)
		}
	}
	if Kind("Service").String() != "Service.serving.knative.dev" || Resource("services").String() != "services.serving.knative.dev" {
		t.Error("Kind/Resource helpers")
	}
}

// TestGeneratedCRDs checks the controller-gen output in config/crd: one CRD
// per kind, in serving.knative.dev, served and stored as v1, with the status
// subresource and the short names kubectl users type.
func TestGeneratedCRDs(t *testing.T) {
	want := map[string][]string{
		"services":       {"ksvc", "kservice"},
		"configurations": {"config", "cfg"},
		"revisions":      {"rev"},
		"routes":         {"rt"},
	}
	for plural, shortNames := range want {
		t.Run(plural, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "config", "crd", "serving.knative.dev_"+plural+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var crd struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Spec       struct {
					Group string `json:"group"`
					Names struct {
						Plural     string   `json:"plural"`
						ShortNames []string `json:"shortNames"`
						Categories []string `json:"categories"`
					} `json:"names"`
					Versions []struct {
						Name         string         `json:"name"`
						Served       bool           `json:"served"`
						Storage      bool           `json:"storage"`
						Subresources map[string]any `json:"subresources"`
						Schema       map[string]any `json:"schema"`
					} `json:"versions"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(b, &crd); err != nil {
				t.Fatalf("not a CRD: %v", err)
			}
			if crd.APIVersion != "apiextensions.k8s.io/v1" || crd.Kind != "CustomResourceDefinition" ||
				crd.Spec.Group != GroupName || crd.Spec.Names.Plural != plural {
				t.Errorf("header = %s %s %s %s", crd.APIVersion, crd.Kind, crd.Spec.Group, crd.Spec.Names.Plural)
			}
			if len(crd.Spec.Names.ShortNames) != len(shortNames) {
				t.Errorf("shortNames = %v, want %v", crd.Spec.Names.ShortNames, shortNames)
			}
			if len(crd.Spec.Names.Categories) != 3 {
				t.Errorf("categories = %v", crd.Spec.Names.Categories)
			}
			if len(crd.Spec.Versions) != 1 {
				t.Fatalf("versions = %d", len(crd.Spec.Versions))
			}
			v := crd.Spec.Versions[0]
			if v.Name != "v1" || !v.Served || !v.Storage || v.Schema == nil {
				t.Errorf("version = %+v", v)
			}
			if _, ok := v.Subresources["status"]; !ok {
				t.Error("no status subresource")
			}
		})
	}
}
