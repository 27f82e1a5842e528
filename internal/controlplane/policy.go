package controlplane

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"

	"github.com/gantry-run/gantry/internal/atomicfile"
	"github.com/gantry-run/gantry/internal/controlplane/datadir"
	"github.com/gantry-run/gantry/internal/controlplane/pki"
	"github.com/gantry-run/gantry/internal/join"
	"github.com/gantry-run/gantry/pkg/apis/config"
)

// AnonymousPaths are the only paths the API server answers without credentials: the health
// checks of load balancers and supervisors, the version, and the cluster-info ConfigMap that
// agents read to trust the server (its CA, signed with the join token; nothing secret).
// Everything else needs a client certificate or a token.
var AnonymousPaths = []string{"/livez", "/readyz", "/version", join.ClusterInfoPath}

// PodSecurityExempt are the namespaces Pod Security admission leaves alone (the "privileged"
// level): Gantry's own and Kubernetes'. Every other namespace gets DefaultPodSecurityLevel
// unless its labels say otherwise.
var PodSecurityExempt = []string{config.Namespace, "kube-system"}

// DefaultPodSecurityLevel is the Pod Security Standard enforced (and warned and audited) in a
// namespace whose labels name none.
const DefaultPodSecurityLevel = "baseline"

// The API server's policy files, in <data-dir>/apiserver.
const (
	authenticationConfigFile = "authentication.yaml"
	admissionConfigFile      = "admission.yaml"
)

func policyPath(cfg Config, name string) string {
	return filepath.Join(cfg.DataDir, datadir.APIServerDir, name)
}

// authenticationConfig is the API server's AuthenticationConfiguration: anonymous requests
// only to AnonymousPaths. Client certificates and service-account tokens are configured by
// flags, as before.
func authenticationConfig() string {
	s := "apiVersion: apiserver.config.k8s.io/v1\n" +
		"kind: AuthenticationConfiguration\n" +
		"anonymous:\n" +
		"  enabled: true\n" +
		"  conditions:\n"
	for _, p := range AnonymousPaths {
		s += fmt.Sprintf("  - path: %s\n", p)
	}
	return s
}

// admissionConfig is the API server's AdmissionConfiguration: Pod Security's defaults and
// exemptions.
func admissionConfig() string {
	s := "apiVersion: apiserver.config.k8s.io/v1\n" +
		"kind: AdmissionConfiguration\n" +
		"plugins:\n" +
		"- name: PodSecurity\n" +
		"  configuration:\n" +
		"    apiVersion: pod-security.admission.config.k8s.io/v1\n" +
		"    kind: PodSecurityConfiguration\n" +
		"    defaults:\n"
	for _, mode := range []string{"enforce", "audit", "warn"} {
		s += fmt.Sprintf("      %s: %s\n      %[1]s-version: latest\n", mode, DefaultPodSecurityLevel)
	}
	s += "    exemptions:\n      namespaces:\n"
	for _, ns := range PodSecurityExempt {
		s += fmt.Sprintf("      - %s\n", ns)
	}
	return s
}

// writePolicy writes the API server's policy files, replacing an earlier start's.
func writePolicy(cfg Config) error {
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, datadir.APIServerDir), 0o700); err != nil {
		return fmt.Errorf("API server policy: %w", err)
	}
	for name, content := range map[string]string{
		authenticationConfigFile: authenticationConfig(),
		admissionConfigFile:      admissionConfig(),
	} {
		if err := atomicfile.Write(policyPath(cfg, name), []byte(content), 0o600); err != nil {
			return fmt.Errorf("API server policy: %w", err)
		}
	}
	return nil
}

// NodeRESTConfig is the client configuration of the serverless node called name, with a
// node's identity (system:node:<name> in system:nodes): the Node authorizer and the
// NodeRestriction admission plugin hold it to what a kubelet may do, for its own Node and the
// pods bound to it. Its certificate is issued on the first call.
func (cp *ControlPlane) NodeRESTConfig(name string) (*rest.Config, error) {
	c := pki.Node(name)
	if err := cp.certs.Ensure(pki.Options{Hosts: servingHosts(cp.cfg)}, c); err != nil {
		return nil, fmt.Errorf("node %s's certificate: %w", name, err)
	}
	return restConfig(cp.server, cp.certs, c), nil
}

// KubeletServingCert issues (on the first call, or when it no longer covers hosts) the kubelet
// API serving certificate of the server's node called name, for hosts, and returns its files.
func (cp *ControlPlane) KubeletServingCert(name string, hosts []string) (cert, key string, err error) {
	if err := cp.certs.EnsureKubelet(name, hosts, time.Time{}); err != nil {
		return "", "", fmt.Errorf("node %s's serving certificate: %w", name, err)
	}
	return cp.certs.KubeletCert(), cp.certs.KubeletKey(), nil
}
