package install

import (
	"bytes"
	"crypto/tls"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/gantry-run/gantry/internal/webhook"
)

func testOptions(t *testing.T) Options {
	t.Helper()
	certs, err := GenerateCerts(Namespace, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return Options{
		Image:              "registry.example/gantry@sha256:" + strings.Repeat("a", 64),
		Replicas:           2,
		Domain:             "example.com",
		Ingress:            IngressGateway,
		GatewayServiceType: corev1.ServiceTypeClusterIP,
		Certs:              certs,
	}
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string, into any) {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no %s %s in the manifests", kind, name)
}

func TestManifestsOrderAndLabels(t *testing.T) {
	objs, err := Manifests(testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"CustomResourceDefinition", "Namespace", "ConfigMap", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Secret", "Deployment", "Service", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
	if diff := cmp.Diff(want, Kinds(objs)); diff != "" {
		t.Errorf("kinds in apply order (-want +got):\n%s", diff)
	}
	crds := 0
	for _, o := range objs {
		if o.GetLabels()[PartOfLabel] != PartOf {
			t.Errorf("%s %s: no label %s=%s", o.GetKind(), o.GetName(), PartOfLabel, PartOf)
		}
		if _, ok := o.Object["status"]; ok {
			t.Errorf("%s %s: has a status", o.GetKind(), o.GetName())
		}
		if o.GetKind() == "CustomResourceDefinition" {
			crds++
			if !gantryGroup(o.GetName()) {
				t.Errorf("CRD %s is not of Knative's or Gantry's groups", o.GetName())
			}
		}
		namespaced := o.GetKind() != "CustomResourceDefinition" && o.GetKind() != "Namespace" && o.GetKind() != "ClusterRole" &&
			o.GetKind() != "ClusterRoleBinding" && !strings.HasSuffix(o.GetKind(), "WebhookConfiguration")
		if namespaced != (o.GetNamespace() == Namespace) {
			t.Errorf("%s %s: namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
		}
	}
	var cms []string
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" {
			cms = append(cms, o.GetName())
		}
	}
	if diff := cmp.Diff([]string{"config-defaults", "config-features", "config-autoscaler", "config-network", "config-deployment"}, cms); diff != "" {
		t.Errorf("ConfigMaps (-want +got):\n%s", diff)
	}
	if crds != 7 {
		t.Errorf("%d CRDs, want the 7 of config/crd", crds)
	}
}

func TestManifestsController(t *testing.T) {
	o := testOptions(t)
	objs, err := Manifests(o)
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	find(t, objs, "Deployment", ControllerName, &d)
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want 2", *d.Spec.Replicas)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy %+v, want Recreate (a new pod is ready only once it leads)", d.Spec.Strategy)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != o.Image {
		t.Errorf("image %s, want %s", c.Image, o.Image)
	}
	for _, arg := range []string{"controller", "--queue-proxy-image=" + o.Image, "--domain=example.com", "--namespace=gantry-system"} {
		if !strings.Contains(strings.Join(c.Args, " "), arg) {
			t.Errorf("args %q lack %q", c.Args, arg)
		}
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v, want /readyz", c.ReadinessProbe)
	}
	if d.Spec.Template.Spec.ServiceAccountName != ControllerName {
		t.Errorf("service account %q", d.Spec.Template.Spec.ServiceAccountName)
	}
	for _, name := range []string{WebhookServiceName, GatewayServiceName} {
		var svc corev1.Service
		find(t, objs, "Service", name, &svc)
		if diff := cmp.Diff(map[string]string{"app": ControllerName}, svc.Spec.Selector); diff != "" {
			t.Errorf("Service %s selector (-want +got):\n%s", name, diff)
		}
		if !cmp.Equal(svc.Spec.Selector, d.Spec.Selector.MatchLabels) {
			t.Errorf("Service %s does not select the controller's pods", name)
		}
	}
}

func TestManifestsWebhooks(t *testing.T) {
	o := testOptions(t)
	objs, err := Manifests(o)
	if err != nil {
		t.Fatal(err)
	}
	var m admissionregistrationv1.MutatingWebhookConfiguration
	find(t, objs, "MutatingWebhookConfiguration", "webhook.serving.knative.dev", &m)
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	find(t, objs, "ValidatingWebhookConfiguration", "validation.webhook.serving.knative.dev", &v)
	var cv admissionregistrationv1.ValidatingWebhookConfiguration
	find(t, objs, "ValidatingWebhookConfiguration", "config.webhook.serving.gantry.dev", &cv)
	ccs := []admissionregistrationv1.WebhookClientConfig{m.Webhooks[0].ClientConfig, v.Webhooks[0].ClientConfig, cv.Webhooks[0].ClientConfig}
	paths := []string{webhook.DefaultingPath, webhook.ValidationPath, webhook.ConfigValidationPath}
	for i, cc := range ccs {
		if cc.URL != nil {
			t.Errorf("webhook %d has URL %s, want the Service", i, *cc.URL)
		}
		if cc.Service == nil || cc.Service.Name != WebhookServiceName || cc.Service.Namespace != Namespace || *cc.Service.Port != 443 {
			t.Fatalf("webhook %d: service %+v", i, cc.Service)
		}
		if *cc.Service.Path != paths[i] {
			t.Errorf("webhook %d: path %q, want %q", i, *cc.Service.Path, paths[i])
		}
		if !bytes.Equal(cc.CABundle, o.Certs.CA) {
			t.Errorf("webhook %d: caBundle is not the install's CA", i)
		}
	}
	// The Secret the pods mount serves the Service's names under that CA.
	var sec corev1.Secret
	find(t, objs, "Secret", CertSecretName, &sec)
	got := Certs{CA: sec.Data["ca.crt"], Cert: sec.Data[corev1.TLSCertKey], Key: sec.Data[corev1.TLSPrivateKeyKey]}
	if err := got.Check(Namespace, time.Now()); err != nil {
		t.Errorf("the Secret's certificate: %v", err)
	}
	if _, err := tls.X509KeyPair(got.Cert, got.Key); err != nil {
		t.Errorf("the Secret's key pair: %v", err)
	}
}

func TestCertsCheck(t *testing.T) {
	now := time.Now()
	c, err := GenerateCerts(Namespace, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(Namespace, now); err != nil {
		t.Errorf("fresh certs: %v", err)
	}
	if err := c.Check("other", now); err == nil {
		t.Error("certs for gantry-system pass for another namespace")
	}
	if err := c.Check(Namespace, now.Add(certValidity-certRenewBefore/2)); err == nil {
		t.Error("certs about to expire pass")
	}
	other, _ := GenerateCerts(Namespace, now)
	if err := (Certs{CA: other.CA, Cert: c.Cert, Key: c.Key}).Check(Namespace, now); err == nil {
		t.Error("a certificate under another CA passes")
	}
}

func TestManifestsYAMLDecodes(t *testing.T) {
	objs, err := Manifests(testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := YAML(objs)
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	n := 0
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			break
		}
		if u.Object == nil {
			continue
		}
		if u.GetKind() != objs[n].GetKind() || u.GetName() != objs[n].GetName() {
			t.Fatalf("document %d is %s %s, want %s %s", n, u.GetKind(), u.GetName(), objs[n].GetKind(), objs[n].GetName())
		}
		n++
	}
	if n != len(objs) {
		t.Errorf("%d documents decoded, want %d", n, len(objs))
	}
}

func TestManifestsQueueProxyImage(t *testing.T) {
	o := testOptions(t)
	o.QueueProxyImage = "registry.example/gantry-system/queue-proxy@sha256:" + strings.Repeat("ab", 32)
	objs, err := Manifests(o)
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	find(t, objs, "Deployment", ControllerName, &d)
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != o.Image {
		t.Errorf("the controller runs %s, want the gantry image %s", c.Image, o.Image)
	}
	args := strings.Join(c.Args, " ")
	if !strings.Contains(args, "--queue-proxy-image="+o.QueueProxyImage) || strings.Contains(args, "--queue-proxy-image="+o.Image) {
		t.Errorf("args %q: want the queue-proxies run from %s", c.Args, o.QueueProxyImage)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(*Options)
		want   string
	}{
		{"no image", func(o *Options) { o.Image = "" }, "--image:"},
		{"bad image", func(o *Options) { o.Image = "UPPER/case:tag" }, "--image:"},
		{"bad queue-proxy image", func(o *Options) { o.QueueProxyImage = "UPPER/case:tag" }, "--queue-proxy-image:"},
		{"replicas", func(o *Options) { o.Replicas = 0 }, "--replicas: 0"},
		{"domain", func(o *Options) { o.Domain = "" }, "--domain:"},
		{"ingress", func(o *Options) { o.Ingress = "istio" }, `--ingress: "istio"`},
		{"gateway-api without a Gateway", func(o *Options) { o.Ingress = IngressGatewayAPI }, "--gateway-api-gateway: --ingress gateway-api needs"},
		{"gateway-api bad Gateway", func(o *Options) { o.Ingress, o.GatewayAPIGateway = IngressGatewayAPI, "nonamespace" }, `--gateway-api-gateway: "nonamespace" is not namespace/name`},
		{"Gateway without gateway-api", func(o *Options) { o.GatewayAPIGateway = "a/b" }, "only with --ingress gateway-api"},
		{"service type", func(o *Options) { o.GatewayServiceType = "External" }, "--gateway-service-type:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			tc.modify(&o)
			_, err := Manifests(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestManifestsGatewayAPI(t *testing.T) {
	o := testOptions(t)
	o.Ingress, o.GatewayAPIGateway = IngressGatewayAPI, "gateways/external"
	objs, err := Manifests(o)
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	find(t, objs, "Deployment", ControllerName, &d)
	args := strings.Join(d.Spec.Template.Spec.Containers[0].Args, " ")
	for _, want := range []string{"--ingress=gateway-api", "--gateway-api-gateway=gateways/external"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
	var role rbacv1.ClusterRole
	find(t, objs, "ClusterRole", ControllerName, &role)
	found := false
	for _, r := range role.Rules {
		found = found || slices.Contains(r.APIGroups, "gateway.networking.k8s.io") && slices.Contains(r.Resources, "httproutes")
	}
	if !found {
		t.Error("the controller may not write HTTPRoutes")
	}
	found = false
	for _, r := range role.Rules {
		found = found || slices.Contains(r.APIGroups, "discovery.k8s.io") && slices.Contains(r.Resources, "endpointslices") && slices.Contains(r.Verbs, "create") && slices.Contains(r.Verbs, "update")
	}
	if !found {
		t.Error("the controller may not write the revisions' EndpointSlices")
	}
	// The activator's Service reaches the controller's activator port.
	var svc corev1.Service
	find(t, objs, "Service", ActivatorServiceName, &svc)
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "http" || svc.Spec.Ports[0].TargetPort.String() != "http-activator" || svc.Spec.Selector["app"] != ControllerName {
		t.Errorf("Service %s: %+v", ActivatorServiceName, svc.Spec)
	}
	havePort := false
	for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
		havePort = havePort || p.Name == "http-activator" && p.ContainerPort == 8012
	}
	if !havePort {
		t.Errorf("the controller has no port http-activator 8012: %+v", d.Spec.Template.Spec.Containers[0].Ports)
	}
	// Without gateway-api, it may not.
	objs, err = Manifests(testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	find(t, objs, "ClusterRole", ControllerName, &role)
	for _, r := range role.Rules {
		if slices.Contains(r.APIGroups, "gateway.networking.k8s.io") {
			t.Error("the gateway ingress's controller may write Gateway API objects")
		}
		if slices.Contains(r.Resources, "endpointslices") && slices.Contains(r.Verbs, "create") {
			t.Error("the gateway ingress's controller may write EndpointSlices")
		}
	}
	for _, o := range objs {
		if o.GetName() == ActivatorServiceName {
			t.Errorf("the gateway ingress installs %s %s", o.GetKind(), o.GetName())
		}
	}
}
