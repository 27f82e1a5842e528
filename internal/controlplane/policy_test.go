package controlplane

import (
	"os"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apiserver/pkg/admission"
	apiserverinstall "k8s.io/apiserver/pkg/apis/apiserver/install"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	psaload "k8s.io/pod-security-admission/admission/api/load"
	"sigs.k8s.io/yaml"

	"github.com/gantry-run/gantry/internal/controlplane/pki"
)

// TestPolicyFilesReadAsTheAPIServerReadsThem writes the policy files and reads them back with
// the API server's own loaders, strictly.
func TestPolicyFilesReadAsTheAPIServerReadsThem(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	if err := writePolicy(cfg); err != nil {
		t.Fatal(err)
	}

	b, err := os.ReadFile(policyPath(cfg, authenticationConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var authn apiserverv1.AuthenticationConfiguration
	if err := yaml.UnmarshalStrict(b, &authn); err != nil {
		t.Fatalf("authentication config: %v\n%s", err, b)
	}
	var paths []string
	for _, c := range authn.Anonymous.Conditions {
		paths = append(paths, c.Path)
	}
	want := []string{"/livez", "/readyz", "/version", "/api/v1/namespaces/kube-public/configmaps/cluster-info"}
	if !authn.Anonymous.Enabled || !slices.Equal(paths, want) {
		t.Errorf("anonymous = %+v, want enabled for %v only", authn.Anonymous, want)
	}

	scheme := runtime.NewScheme()
	apiserverinstall.Install(scheme)
	provider, err := admission.ReadAdmissionConfiguration([]string{"PodSecurity"}, policyPath(cfg, admissionConfigFile), scheme)
	if err != nil {
		t.Fatalf("admission config: %v", err)
	}
	r, err := provider.ConfigFor("PodSecurity")
	if err != nil || r == nil {
		t.Fatalf("PodSecurity's configuration: %v", err)
	}
	psa, err := psaload.LoadFromReader(r)
	if err != nil {
		t.Fatalf("PodSecurity's configuration: %v", err)
	}
	if psa.Defaults.Enforce != "baseline" || psa.Defaults.Warn != "baseline" || psa.Defaults.Audit != "baseline" {
		t.Errorf("defaults = %+v, want baseline", psa.Defaults)
	}
	if !slices.Equal(psa.Exemptions.Namespaces, []string{"gantry-system", "kube-system"}) {
		t.Errorf("exempt namespaces = %v", psa.Exemptions.Namespaces)
	}

	args := strings.Join(apiServerArgs(cfg, pki.Bundle{Dir: cfg.DataDir}), " ")
	for _, want := range []string{
		"--authentication-config=" + policyPath(cfg, authenticationConfigFile),
		"--admission-control-config-file=" + policyPath(cfg, admissionConfigFile),
		"--enable-admission-plugins=NodeRestriction,PodSecurity",
		"--allow-privileged=false",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("API server args lack %s", want)
		}
	}
}
