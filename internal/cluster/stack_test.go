package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func validOptions(t *testing.T) Options {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{CertFile, KeyFile} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return Options{
		Namespace: "gantry-system", LeaderElection: true,
		WebhookPort: DefaultWebhookPort, HTTPPort: DefaultHTTPPort, HealthPort: DefaultHealthPort,
		CertDir: dir, Domain: "example.com", QueueProxyImage: "registry.example/gantry:v1",
		ActivatorQueueDepth: 10, Ingress: IngressGateway,
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := validOptions(t).Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	for _, tc := range []struct {
		name   string
		modify func(*Options)
		want   string
	}{
		{"webhook port", func(o *Options) { o.WebhookPort = 0 }, "--webhook-port: 0"},
		{"http port", func(o *Options) { o.HTTPPort = 70000 }, "--http-port: 70000"},
		{"health port", func(o *Options) { o.HealthPort = -1 }, "--health-port: -1"},
		{"no cert dir", func(o *Options) { o.CertDir = "" }, "--cert-dir: must name"},
		{"cert dir without the key pair", func(o *Options) { o.CertDir = t.TempDir() }, "--cert-dir:"},
		{"no queue-proxy image", func(o *Options) { o.QueueProxyImage = "" }, "--queue-proxy-image: must name"},
		{"bad queue-proxy image", func(o *Options) { o.QueueProxyImage = "UPPER:x" }, "--queue-proxy-image:"},
		{"domain", func(o *Options) { o.Domain = "" }, "--domain:"},
		{"queue depth", func(o *Options) { o.ActivatorQueueDepth = 0 }, "--activator-queue-depth: 0"},
		{"ingress", func(o *Options) { o.Ingress = "istio" }, `--ingress: "istio"`},
		{"gateway-api without a Gateway", func(o *Options) { o.Ingress = IngressGatewayAPI }, "--gateway-api-gateway:"},
		{"activator port without gateway-api", func(o *Options) { o.ActivatorPort = 9000 }, "--activator-port: only with --ingress gateway-api"},
		{"activator port out of range", func(o *Options) {
			o.Ingress, o.Gateways.External, o.ActivatorPort = IngressGatewayAPI, types.NamespacedName{Namespace: "gw", Name: "external"}, 70000
		}, "--activator-port: 70000"},
		{"activator port taken by the gateway", func(o *Options) {
			o.Ingress, o.Gateways.External, o.HTTPPort = IngressGatewayAPI, types.NamespacedName{Namespace: "gw", Name: "external"}, DefaultActivatorPort
		}, "--activator-port: 8012 is taken"},
		{"leader election without a namespace", func(o *Options) { o.Namespace = "" }, "--namespace:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := validOptions(t)
			tc.modify(&o)
			err := o.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	o := validOptions(t)
	o.Ingress, o.Gateways.External = IngressGatewayAPI, types.NamespacedName{Namespace: "gw", Name: "external"}
	if err := o.Validate(); err != nil {
		t.Errorf("gateway-api with a Gateway: %v", err)
	}
}
