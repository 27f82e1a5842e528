// Package install builds and applies the manifests of Gantry's serving stack on an existing
// Kubernetes cluster (cluster mode), as Knative's release YAML does: the CRDs, the
// gantry-system namespace with its ConfigMaps, RBAC, the gantry-controller Deployment
// (controllers, webhook, autoscaler, activator, gateway: `gantry controller`), its Services
// and the webhook configurations with a certificate made at install. Manifests is a pure
// function; Install applies its output with server-side apply and Uninstall removes it.
package install

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/gantry-run/gantry/internal/cluster"
	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/serving"
	"github.com/gantry-run/gantry/internal/webhook"
	"github.com/gantry-run/gantry/pkg/apis/config"
)

// Names of what install writes.
const (
	Namespace          = config.Namespace
	ControllerName     = "gantry-controller"
	WebhookServiceName = "gantry-webhook"
	GatewayServiceName = "gantry-gateway"
	// ActivatorServiceName, with IngressGatewayAPI, is the Service in front of the
	// activator's port: the revisions' Services point at its endpoints while the activator
	// is in their path.
	ActivatorServiceName = cluster.ActivatorServiceName
	CertSecretName       = "gantry-webhook-certs"
	// PartOfLabel marks every object install writes; Uninstall and the tests find them by it.
	PartOfLabel = "app.kubernetes.io/part-of"
	PartOf      = "gantry"
	// FieldManager is the server-side apply field manager of install.
	FieldManager = "gantry-install"
)

// Values of --ingress.
const (
	// IngressGateway serves Routes with Gantry's gateway behind the gantry-gateway Service.
	IngressGateway = cluster.IngressGateway
	// IngressGatewayAPI also writes Gateway API HTTPRoutes for every Knative Ingress,
	// attached to GatewayAPIGateway (the cluster's Gateway API implementation serves them).
	IngressGatewayAPI = cluster.IngressGatewayAPI
)

// Options are what the manifests depend on.
type Options struct {
	// Image is the gantry image: the controller runs it, and so does every revision's
	// queue-proxy container unless QueueProxyImage names another.
	Image string
	// QueueProxyImage is the image of every revision's queue-proxy container (gantry image
	// queue-proxy: the queue-proxy's own binary, quicker to start); empty means Image.
	QueueProxyImage string
	// Replicas of the controller (one leads; the others serve the webhook and wait).
	Replicas int32
	// Domain is the suffix of Route hosts.
	Domain string
	// Ingress is how Routes are reached: IngressGateway or IngressGatewayAPI.
	Ingress string
	// GatewayAPIGateway and GatewayAPILocalGateway (namespace/name) are the Gateways the
	// HTTPRoutes of public and cluster-local hosts attach to, with IngressGatewayAPI.
	GatewayAPIGateway, GatewayAPILocalGateway string
	// GatewayServiceType is the gantry-gateway Service's type (ClusterIP, NodePort,
	// LoadBalancer).
	GatewayServiceType corev1.ServiceType
	// Certs serve the webhook.
	Certs Certs
	// OwnNamespace says install created gantry-system (it was not there before): the
	// namespace carries CreatedAnnotation, and uninstall deletes it. A namespace that was
	// there (a gantry server with --serving=false keeps its own things in it) stays.
	OwnNamespace bool
}

// CreatedAnnotation marks the gantry-system namespace install created.
const CreatedAnnotation = "gantry.dev/created-by-install"

// Validate names the flag of each wrong option.
func (o Options) Validate() error {
	var errs []error
	if o.Image == "" {
		errs = append(errs, errors.New("--image: must name the gantry image the cluster's nodes pull (gantry image wrap \"$(command -v gantry)\" REF --user 65532)"))
	} else if _, err := image.ParseReference(o.Image); err != nil {
		errs = append(errs, fmt.Errorf("--image: %w", err))
	}
	if o.QueueProxyImage != "" {
		if _, err := image.ParseReference(o.QueueProxyImage); err != nil {
			errs = append(errs, fmt.Errorf("--queue-proxy-image: %w", err))
		}
	}
	if o.Replicas < 1 {
		errs = append(errs, fmt.Errorf("--replicas: %d must be at least 1", o.Replicas))
	}
	if o.Domain == "" {
		errs = append(errs, errors.New("--domain: must not be empty"))
	}
	switch o.Ingress {
	case IngressGateway:
		if o.GatewayAPIGateway != "" || o.GatewayAPILocalGateway != "" {
			errs = append(errs, errors.New("--gateway-api-gateway, --gateway-api-local-gateway: only with --ingress gateway-api"))
		}
	case IngressGatewayAPI:
		if o.GatewayAPIGateway == "" {
			errs = append(errs, errors.New("--gateway-api-gateway: --ingress gateway-api needs the Gateway (namespace/name) the HTTPRoutes attach to"))
		}
		for flag, ref := range map[string]string{"--gateway-api-gateway": o.GatewayAPIGateway, "--gateway-api-local-gateway": o.GatewayAPILocalGateway} {
			if ns, name, ok := strings.Cut(ref, "/"); ref != "" && (!ok || ns == "" || name == "" || strings.Contains(name, "/")) {
				errs = append(errs, fmt.Errorf("%s: %q is not namespace/name", flag, ref))
			}
		}
	default:
		errs = append(errs, fmt.Errorf("--ingress: %q is not one of %s, %s", o.Ingress, IngressGateway, IngressGatewayAPI))
	}
	switch o.GatewayServiceType {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
	default:
		errs = append(errs, fmt.Errorf("--gateway-service-type: %q is not one of ClusterIP, NodePort, LoadBalancer", o.GatewayServiceType))
	}
	return errors.Join(errs...)
}

// queueProxyImage is the image every revision's queue-proxy runs.
func (o Options) queueProxyImage() string {
	if o.QueueProxyImage != "" {
		return o.QueueProxyImage
	}
	return o.Image
}

func labels(extra ...string) map[string]string {
	l := map[string]string{PartOfLabel: PartOf, "app.kubernetes.io/managed-by": FieldManager}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return l
}

func meta(name, namespace string, extra ...string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels(extra...)}
}

// Manifests are the objects of the serving stack, in the order they are applied: CRDs, the
// namespace and what lives in it, RBAC, the controller, then the webhook configurations
// (once the webhook serves, or every write of the kinds would fail).
func Manifests(o Options) ([]*unstructured.Unstructured, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var objs []runtime.Object
	crds, err := serving.CRDs()
	if err != nil {
		return nil, err
	}
	for _, c := range crds {
		c.APIVersion, c.Kind = "apiextensions.k8s.io/v1", "CustomResourceDefinition"
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		for k, v := range labels() {
			c.Labels[k] = v
		}
		objs = append(objs, c)
	}
	ns := &corev1.Namespace{TypeMeta: typeMeta("v1", "Namespace"), ObjectMeta: meta(Namespace, "")}
	if o.OwnNamespace {
		ns.Annotations = map[string]string{CreatedAnnotation: "true"}
	}
	objs = append(objs, ns)
	for _, name := range ConfigMapNames() {
		objs = append(objs, &corev1.ConfigMap{
			TypeMeta:   typeMeta("v1", "ConfigMap"),
			ObjectMeta: meta(name, Namespace),
			Data:       map[string]string{config.ExampleKey: config.Example(name)},
		})
	}
	gatewayAPI := o.Ingress == IngressGatewayAPI
	objs = append(objs, rbac(gatewayAPI)...)
	objs = append(objs,
		&corev1.Secret{
			TypeMeta:   typeMeta("v1", "Secret"),
			ObjectMeta: meta(CertSecretName, Namespace),
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: o.Certs.Cert, corev1.TLSPrivateKeyKey: o.Certs.Key, "ca.crt": o.Certs.CA},
		},
		deployment(o),
		service(WebhookServiceName, corev1.ServiceTypeClusterIP, corev1.ServicePort{Name: "https-webhook", Port: 443, TargetPort: intstr.FromString("https-webhook")}),
		service(GatewayServiceName, o.GatewayServiceType, corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}),
	)
	if gatewayAPI {
		// Its port is named as the revisions' Services' ports (Knative's "http"), and its
		// EndpointSlices are what those Services' slices copy while the activator is in the path.
		objs = append(objs, service(ActivatorServiceName, corev1.ServiceTypeClusterIP,
			corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString(activatorPortName)}))
	}
	whs, err := webhookConfigurations(o.Certs.CA)
	if err != nil {
		return nil, err
	}
	objs = append(objs, whs...)
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, obj := range objs {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		if err != nil {
			return nil, err
		}
		u := &unstructured.Unstructured{Object: m}
		// What the server fills in is not the installer's to apply.
		unstructured.RemoveNestedField(u.Object, "status")
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
		if spec, ok := u.Object["spec"].(map[string]any); ok {
			if tmpl, ok := spec["template"].(map[string]any); ok {
				unstructured.RemoveNestedField(tmpl, "metadata", "creationTimestamp")
			}
		}
		out = append(out, u)
	}
	return out, nil
}

// ConfigMapNames are the configuration ConfigMaps of the serving stack. Metering's and the
// serverless profiles' belong to the serverless node, which cluster mode does not install
// (a gantry server keeps its own config-metering in gantry-system).
func ConfigMapNames() []string {
	var out []string
	for _, n := range config.Names() {
		if n != config.MeteringConfigName && n != config.ServerlessConfigName {
			out = append(out, n)
		}
	}
	return out
}

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

// rbac is the controller's identity: its ServiceAccount and what it may do, cluster-wide
// (it reconciles Knative objects in every namespace) and in gantry-system (its Lease).
func rbac(gatewayAPI bool) []runtime.Object {
	verbsAll := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	read := []string{"get", "list", "watch"}
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{"serving.knative.dev", "autoscaling.internal.knative.dev", "networking.internal.knative.dev"}, Resources: []string{"*"}, Verbs: verbsAll},
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "deployments/scale"}, Verbs: verbsAll},
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: verbsAll},
		{APIGroups: []string{""}, Resources: []string{"pods", "endpoints", "namespaces", "configmaps"}, Verbs: read},
		{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: read},
		{APIGroups: []string{"autoscaling"}, Resources: []string{"horizontalpodautoscalers"}, Verbs: verbsAll},
		{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"create", "patch", "update"}},
		{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: read},
	}
	if gatewayAPI {
		rules = append(rules,
			rbacv1.PolicyRule{APIGroups: []string{"gateway.networking.k8s.io"}, Resources: []string{"httproutes"}, Verbs: verbsAll},
			// The revisions' Services have no selector: the stack keeps their EndpointSlices.
			rbacv1.PolicyRule{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: verbsAll})
	}
	return []runtime.Object{
		&corev1.ServiceAccount{TypeMeta: typeMeta("v1", "ServiceAccount"), ObjectMeta: meta(ControllerName, Namespace)},
		&rbacv1.ClusterRole{TypeMeta: typeMeta("rbac.authorization.k8s.io/v1", "ClusterRole"), ObjectMeta: meta(ControllerName, ""), Rules: rules},
		&rbacv1.ClusterRoleBinding{
			TypeMeta:   typeMeta("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
			ObjectMeta: meta(ControllerName, ""),
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: ControllerName},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: ControllerName, Namespace: Namespace}},
		},
		&rbacv1.Role{
			TypeMeta:   typeMeta("rbac.authorization.k8s.io/v1", "Role"),
			ObjectMeta: meta(ControllerName, Namespace),
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: verbsAll},
			},
		},
		&rbacv1.RoleBinding{
			TypeMeta:   typeMeta("rbac.authorization.k8s.io/v1", "RoleBinding"),
			ObjectMeta: meta(ControllerName, Namespace),
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: ControllerName},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: ControllerName, Namespace: Namespace}},
		},
	}
}

// deployment runs `gantry controller` from the gantry image.
func deployment(o Options) *appsv1.Deployment {
	sel := map[string]string{"app": ControllerName}
	port := func(name string, p int32) corev1.ContainerPort {
		return corev1.ContainerPort{Name: name, ContainerPort: p, Protocol: corev1.ProtocolTCP}
	}
	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("health")}},
			PeriodSeconds: 2, TimeoutSeconds: 1, FailureThreshold: 3,
		}
	}
	liveness := probe("/healthz")
	liveness.PeriodSeconds, liveness.InitialDelaySeconds = 10, 10
	ports := []corev1.ContainerPort{
		port("https-webhook", cluster.DefaultWebhookPort),
		port("http", cluster.DefaultHTTPPort),
		port("health", cluster.DefaultHealthPort),
	}
	if o.Ingress == IngressGatewayAPI {
		ports = append(ports, port(activatorPortName, cluster.DefaultActivatorPort))
	}
	return &appsv1.Deployment{
		TypeMeta:   typeMeta("apps/v1", "Deployment"),
		ObjectMeta: meta(ControllerName, Namespace, "app", ControllerName),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(o.Replicas),
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			// Only the leader is ready, so a rolling update never ends: a surge pod waits for
			// the lease the old leader holds, and the leader is the one pod the update may
			// not take down. The old pods go first (the leader lets its lease go as it
			// stops); the stack is away for the seconds a new pod takes to lead.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels("app", ControllerName)},
				Spec: corev1.PodSpec{
					ServiceAccountName: ControllerName,
					Containers: []corev1.Container{{
						Name:  "controller",
						Image: o.Image,
						Args: append([]string{
							"controller",
							"--namespace=" + Namespace,
							"--cert-dir=/etc/gantry/webhook",
							"--domain=" + o.Domain,
							"--queue-proxy-image=" + o.queueProxyImage(),
							"--webhook-port=" + strconv.Itoa(cluster.DefaultWebhookPort),
							"--http-port=" + strconv.Itoa(cluster.DefaultHTTPPort),
							"--health-port=" + strconv.Itoa(cluster.DefaultHealthPort),
							"--ingress=" + o.Ingress,
						}, gatewayArgs(o)...),
						Ports:          ports,
						ReadinessProbe: probe("/readyz"),
						LivenessProbe:  liveness,
						VolumeMounts: []corev1.VolumeMount{
							{Name: "webhook-certs", MountPath: "/etc/gantry/webhook", ReadOnly: true},
							// The image resolver's scratch space; the root is read-only.
							{Name: "tmp", MountPath: "/tmp"},
						},
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU:    resourceQuantity("100m"),
							corev1.ResourceMemory: resourceQuantity("128Mi"),
						}},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							RunAsNonRoot:             ptr.To(true),
							RunAsUser:                ptr.To[int64](65532),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "webhook-certs", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: CertSecretName}}},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
				},
			},
		},
	}
}

// activatorPortName is the controller container's port of the activator (gateway-api only).
const activatorPortName = "http-activator"

func gatewayArgs(o Options) []string {
	var out []string
	if o.GatewayAPIGateway != "" {
		out = append(out, "--gateway-api-gateway="+o.GatewayAPIGateway)
	}
	if o.GatewayAPILocalGateway != "" {
		out = append(out, "--gateway-api-local-gateway="+o.GatewayAPILocalGateway)
	}
	return out
}

func service(name string, typ corev1.ServiceType, port corev1.ServicePort) *corev1.Service {
	port.Protocol = corev1.ProtocolTCP
	return &corev1.Service{
		TypeMeta:   typeMeta("v1", "Service"),
		ObjectMeta: meta(name, Namespace),
		Spec: corev1.ServiceSpec{
			Type:     typ,
			Selector: map[string]string{"app": ControllerName},
			Ports:    []corev1.ServicePort{port},
		},
	}
}

// webhookConfigurations are the standalone server's webhook configurations (same rules,
// same paths) sent to the gantry-webhook Service instead of a loopback URL.
func webhookConfigurations(ca []byte) ([]runtime.Object, error) {
	const placeholder = "https://gantry-webhook.invalid"
	mutating, validating := webhook.Configurations(placeholder, ca)
	configs := webhook.ConfigConfiguration(placeholder, ca)
	toService := func(cc *admissionregistrationv1.WebhookClientConfig) error {
		u, err := url.Parse(ptr.Deref(cc.URL, ""))
		if err != nil {
			return err
		}
		cc.URL = nil
		cc.Service = &admissionregistrationv1.ServiceReference{Namespace: Namespace, Name: WebhookServiceName, Path: ptr.To(u.Path), Port: ptr.To[int32](443)}
		return nil
	}
	var errs []error
	for i := range mutating.Webhooks {
		errs = append(errs, toService(&mutating.Webhooks[i].ClientConfig))
	}
	for _, v := range []*admissionregistrationv1.ValidatingWebhookConfiguration{validating, configs} {
		for i := range v.Webhooks {
			errs = append(errs, toService(&v.Webhooks[i].ClientConfig))
		}
		v.TypeMeta = typeMeta("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration")
		v.Labels = labels()
	}
	mutating.TypeMeta = typeMeta("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
	mutating.Labels = labels()
	return []runtime.Object{mutating, validating, configs}, errors.Join(errs...)
}

// YAML renders objs as one multi-document YAML stream.
func YAML(objs []*unstructured.Unstructured) ([]byte, error) {
	var out []byte
	for i, o := range objs {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
		}
		if i > 0 {
			out = append(out, "---\n"...)
		}
		out = append(out, b...)
	}
	return out, nil
}

// Kinds are the kinds of objs, each once, in order.
func Kinds(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		if !slices.Contains(out, o.GetKind()) {
			out = append(out, o.GetKind())
		}
	}
	return out
}

func resourceQuantity(s string) resource.Quantity { return resource.MustParse(s) }
