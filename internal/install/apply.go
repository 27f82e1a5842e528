package install

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/serving"
)

// pollInterval is how often Install and Uninstall look at what they wait for.
const pollInterval = 250 * time.Millisecond

// LoadOrGenerateCerts reuses the webhook's certificate in the cluster when it is still good
// (so running replicas and the caBundle agree), and makes a new one otherwise.
func LoadOrGenerateCerts(ctx context.Context, c client.Client, now time.Time) (Certs, error) {
	sec := &corev1.Secret{}
	err := c.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: CertSecretName}, sec)
	switch {
	case err == nil:
		certs := Certs{CA: sec.Data["ca.crt"], Cert: sec.Data[corev1.TLSCertKey], Key: sec.Data[corev1.TLSPrivateKeyKey]}
		if certs.Check(Namespace, now) == nil {
			return certs, nil
		}
	case !apierrors.IsNotFound(err) && !apimeta.IsNoMatchError(err):
		return Certs{}, fmt.Errorf("reading Secret %s/%s: %w", Namespace, CertSecretName, err)
	}
	return GenerateCerts(Namespace, now)
}

// Install applies the manifests of o with server-side apply, in order, and waits until the
// CRDs are established and the controller has a ready replica before it registers the
// webhooks; with the default ingress it then removes what an earlier install with
// --ingress gateway-api made (switchIngress). timeout bounds the whole.
func Install(ctx context.Context, cfg *rest.Config, o Options, timeout time.Duration, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return fmt.Errorf("connecting to the cluster: %w", err)
	}
	if o.Certs.Cert == nil {
		if o.Certs, err = LoadOrGenerateCerts(ctx, c, time.Now()); err != nil {
			return err
		}
	}
	if o.Ingress == IngressGatewayAPI {
		if _, err := c.RESTMapper().RESTMapping(schema.GroupKind{Group: "gateway.networking.k8s.io", Kind: "HTTPRoute"}, "v1"); err != nil {
			return fmt.Errorf("--ingress gateway-api: the cluster does not serve gateway.networking.k8s.io/v1 HTTPRoutes (install a Gateway API implementation first): %w", err)
		}
	}
	was, err := installedIngress(ctx, c)
	if err != nil {
		return err
	}
	ns := &corev1.Namespace{}
	switch err := c.Get(ctx, client.ObjectKey{Name: Namespace}, ns); {
	case apierrors.IsNotFound(err):
		o.OwnNamespace = true
	case err != nil:
		return fmt.Errorf("reading namespace %s: %w", Namespace, err)
	default:
		o.OwnNamespace = ns.Annotations[CreatedAnnotation] == "true"
	}
	objs, err := Manifests(o)
	if err != nil {
		return err
	}
	var crdNames []string
	for _, obj := range objs {
		switch obj.GetKind() {
		case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
			continue // once the webhook serves
		case "CustomResourceDefinition":
			crdNames = append(crdNames, obj.GetName())
		}
		if err := apply(ctx, c, obj); err != nil {
			return err
		}
		if obj.GetKind() == "Namespace" {
			// The kinds are applied; the rest needs them served.
			if err := waitCRDs(ctx, cfg); err != nil {
				return err
			}
		}
	}
	log.Info("manifests applied; waiting for the controller", "namespace", Namespace, "deployment", ControllerName)
	if err := waitDeployment(ctx, c); err != nil {
		return err
	}
	for _, obj := range objs {
		switch obj.GetKind() {
		case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
			if err := apply(ctx, c, obj); err != nil {
				return err
			}
		}
	}
	if err := switchIngress(ctx, c, was, o.Ingress, log); err != nil {
		return err
	}
	log.Info("installed", "crds", len(crdNames), "objects", len(objs))
	return nil
}

func apply(ctx context.Context, c client.Client, obj *unstructured.Unstructured) error {
	if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj.DeepCopy()), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying %s %s: %w", obj.GetKind(), objName(obj), err)
	}
	return nil
}

func objName(obj *unstructured.Unstructured) string {
	if obj.GetNamespace() != "" {
		return obj.GetNamespace() + "/" + obj.GetName()
	}
	return obj.GetName()
}

func waitCRDs(ctx context.Context, cfg *rest.Config) error {
	if err := serving.WaitCRDs(ctx, cfg); err != nil {
		return fmt.Errorf("waiting for the CRDs: %w", err)
	}
	return nil
}

// waitDeployment waits for a ready replica of the controller: the leader (the others stay
// unready while they wait for the lease).
func waitDeployment(ctx context.Context, c client.Client) error {
	var last string
	err := wait.PollUntilContextCancel(ctx, pollInterval, true, func(ctx context.Context) (bool, error) {
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: ControllerName}, d); err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("%d of %d replicas ready", d.Status.ReadyReplicas, ptrOr(d.Spec.Replicas, 1))
		return d.Status.ReadyReplicas >= 1 && d.Status.ObservedGeneration >= d.Generation, nil
	})
	if err != nil {
		return fmt.Errorf("deployment %s/%s not ready (%s): %w (kubectl -n %s describe pods -l app=%s)", Namespace, ControllerName, last, err, Namespace, ControllerName)
	}
	return nil
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// namespacedKinds are the kinds install writes into gantry-system.
var namespacedKinds = []string{"ConfigMap", "ServiceAccount", "Role", "RoleBinding", "Secret", "Deployment", "Service"}

// identities are the objects install writes, without their contents: what Uninstall
// deletes and Leftovers looks for. They are those of --ingress gateway-api, which writes
// all the other ingress does and more (the activator's Service).
func identities() ([]*unstructured.Unstructured, error) {
	return Manifests(Options{Image: "gantry.invalid/gantry:uninstall", Replicas: 1, Domain: "invalid",
		Ingress: IngressGatewayAPI, GatewayAPIGateway: "invalid/invalid", GatewayServiceType: corev1.ServiceTypeClusterIP})
}

// Uninstall removes everything Install wrote: the webhook configurations first (nothing is
// admitted by a webhook that is going away), then the CRDs (the API server deletes every
// Knative object, and the garbage collector what they own, while the controller still runs
// to let them go), then the namespace and the cluster-wide RBAC. It waits until they are
// gone; timeout bounds the whole.
func Uninstall(ctx context.Context, cfg *rest.Config, timeout time.Duration, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return fmt.Errorf("connecting to the cluster: %w", err)
	}
	objs, err := identities()
	if err != nil {
		return err
	}
	phase := func(kinds ...string) error {
		var deleted []*unstructured.Unstructured
		for _, o := range objs {
			if !slices.Contains(kinds, o.GetKind()) {
				continue
			}
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(o.GroupVersionKind())
			u.SetName(o.GetName())
			u.SetNamespace(o.GetNamespace())
			err := c.Delete(ctx, u, client.PropagationPolicy(metav1.DeletePropagationForeground))
			if err != nil && !apierrors.IsNotFound(err) && !apimeta.IsNoMatchError(err) {
				return fmt.Errorf("deleting %s %s: %w", o.GetKind(), objName(o), err)
			}
			deleted = append(deleted, u)
		}
		return waitGone(ctx, c, deleted)
	}
	if err := phase("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"); err != nil {
		return err
	}
	// The Knative objects go first, while their kinds and the controller are there: the
	// garbage collector then deletes what they own (Deployments, pods) as it does for any
	// owner. Deleting only the CRDs leaves that to its slower handling of vanished kinds.
	log.Info("deleting every Knative object")
	if err := deleteAllOf(ctx, c, objs); err != nil {
		return err
	}
	log.Info("deleting the CRDs")
	if err := phase("CustomResourceDefinition"); err != nil {
		return err
	}
	ns := &corev1.Namespace{}
	err = c.Get(ctx, client.ObjectKey{Name: Namespace}, ns)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("reading namespace %s: %w", Namespace, err)
	case ns.Annotations[CreatedAnnotation] == "true":
		log.Info("deleting the namespace and RBAC", "namespace", Namespace)
		if err := phase("Namespace"); err != nil {
			return err
		}
	default:
		// The namespace was there before install: only what install put in it goes, and
		// the controller's Lease; install's labels leave the namespace with it.
		log.Info("deleting what install put in the namespace, which stays", "namespace", Namespace)
		if err := phase(namespacedKinds...); err != nil {
			return err
		}
		lease := &unstructured.Unstructured{}
		lease.SetGroupVersionKind(schema.GroupVersionKind{Group: "coordination.k8s.io", Version: "v1", Kind: "Lease"})
		lease.SetNamespace(Namespace)
		lease.SetName(serving.LeaderElectionID)
		if err := c.Delete(ctx, lease); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting Lease %s/%s: %w", Namespace, serving.LeaderElectionID, err)
		}
		bare := &unstructured.Unstructured{}
		bare.SetAPIVersion("v1")
		bare.SetKind("Namespace")
		bare.SetName(Namespace)
		if err := apply(ctx, c, bare); err != nil {
			return err
		}
	}
	log.Info("deleting the RBAC")
	if err := phase("ClusterRole", "ClusterRoleBinding"); err != nil {
		return err
	}
	// The garbage collector deletes what the Knative objects owned (the revisions'
	// Deployments, their pods) after them: wait for it too.
	log.Info("waiting for the revisions' objects to go")
	var left []string
	err = wait.PollUntilContextCancel(ctx, pollInterval, true, func(ctx context.Context) (bool, error) {
		var err error
		left, err = Leftovers(ctx, cfg)
		return err == nil && len(left) == 0, err
	})
	if err != nil {
		return fmt.Errorf("uninstalled, but these remain: %s: %w", strings.Join(left, ", "), err)
	}
	return nil
}

// deleteAllOf deletes every object of the kinds of the CRDs in objs, in every namespace, and
// waits until they are gone.
func deleteAllOf(ctx context.Context, c client.Client, objs []*unstructured.Unstructured) error {
	var kinds []schema.GroupVersionKind
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
		versions, _, _ := unstructured.NestedSlice(o.Object, "spec", "versions")
		for _, v := range versions {
			if vm, ok := v.(map[string]any); ok && vm["storage"] == true {
				kinds = append(kinds, schema.GroupVersionKind{Group: group, Version: fmt.Sprint(vm["name"]), Kind: kind})
			}
		}
	}
	// Services own Configurations and Routes, which own Revisions: the owners first.
	list := func(gvk schema.GroupVersionKind) ([]unstructured.Unstructured, error) {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := c.List(ctx, l); err != nil {
			if apimeta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("listing %s: %w", gvk.Kind, err)
		}
		return l.Items, nil
	}
	for _, gvk := range kinds {
		items, err := list(gvk)
		if err != nil {
			return err
		}
		for i := range items {
			if err := c.Delete(ctx, &items[i], client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting %s %s: %w", gvk.Kind, objName(&items[i]), err)
			}
		}
	}
	var last string
	err := wait.PollUntilContextCancel(ctx, pollInterval, true, func(context.Context) (bool, error) {
		for _, gvk := range kinds {
			items, err := list(gvk)
			if err != nil {
				return false, err
			}
			if len(items) > 0 {
				last = gvk.Kind + " " + objName(&items[0])
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %s to go: %w", last, err)
	}
	return nil
}

func waitGone(ctx context.Context, c client.Client, objs []*unstructured.Unstructured) error {
	var last string
	err := wait.PollUntilContextCancel(ctx, pollInterval, true, func(ctx context.Context) (bool, error) {
		for _, o := range objs {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(o.GroupVersionKind())
			err := c.Get(ctx, client.ObjectKeyFromObject(o), u)
			if apierrors.IsNotFound(err) || apimeta.IsNoMatchError(err) {
				continue
			}
			last = o.GetKind() + " " + objName(o)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %s to go: %w", last, err)
	}
	return nil
}

// leftoverKinds are the kinds Leftovers lists, cluster-wide.
var leftoverKinds = []schema.GroupVersionKind{
	{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinitionList"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleList"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBindingList"},
	{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "MutatingWebhookConfigurationList"},
	{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "ValidatingWebhookConfigurationList"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleList"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBindingList"},
	{Group: "coordination.k8s.io", Version: "v1", Kind: "LeaseList"},
	{Version: "v1", Kind: "NamespaceList"},
	{Version: "v1", Kind: "ConfigMapList"},
	{Version: "v1", Kind: "SecretList"},
	{Version: "v1", Kind: "ServiceList"},
	{Version: "v1", Kind: "ServiceAccountList"},
	{Version: "v1", Kind: "PodList"},
	{Group: "apps", Version: "v1", Kind: "DeploymentList"},
	{Group: "apps", Version: "v1", Kind: "ReplicaSetList"},
	{Group: "autoscaling", Version: "v2", Kind: "HorizontalPodAutoscalerList"},
	// The revisions' backend Services' slices (--ingress gateway-api), and those of the
	// Services the stack made.
	{Group: "discovery.k8s.io", Version: "v1", Kind: "EndpointSliceList"},
	// Only in clusters that serve Gateway API.
	{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRouteList"},
}

// Leftovers names what of Gantry's serving stack is in the cluster: whatever install
// labelled (managed-by gantry-install), any CRD of Knative's or Gantry's groups, any webhook
// configuration of Knative's, the controller's Lease, an object the manifests name, and any
// object of a Knative revision (labelled serving.knative.dev/...), anywhere.
func Leftovers(ctx context.Context, cfg *rest.Config) ([]string, error) {
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		return nil, err
	}
	var left []string
	add := func(name string) {
		if !slices.Contains(left, name) {
			left = append(left, name)
		}
	}
	for _, gvk := range leftoverKinds {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(gvk)
		if err := c.List(ctx, l); err != nil {
			if apimeta.IsNoMatchError(err) {
				continue
			}
			return nil, fmt.Errorf("listing %s: %w", gvk.Kind, err)
		}
		kind := strings.TrimSuffix(gvk.Kind, "List")
		for _, o := range l.Items {
			if leftover(kind, &o) {
				add(kind + " " + objName(&o))
			}
		}
	}
	ids, err := identities()
	if err != nil {
		return nil, err
	}
	for _, o := range ids {
		if o.GetKind() == "Namespace" {
			continue // judged above: it may have been there before install
		}
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(o.GroupVersionKind())
		err := c.Get(ctx, client.ObjectKeyFromObject(o), u)
		if err == nil {
			add(o.GetKind() + " " + objName(o))
		} else if !apierrors.IsNotFound(err) && !apimeta.IsNoMatchError(err) {
			return nil, errors.Join(fmt.Errorf("reading %s %s", o.GetKind(), objName(o)), err)
		}
	}
	slices.Sort(left)
	return left, nil
}

// leftover says whether o of kind is Gantry's serving stack's.
func leftover(kind string, o *unstructured.Unstructured) bool {
	l := o.GetLabels()
	if l["app.kubernetes.io/managed-by"] == FieldManager || o.GetAnnotations()[CreatedAnnotation] != "" {
		return true
	}
	for k := range l {
		if strings.HasPrefix(k, "serving.knative.dev/") || strings.HasPrefix(k, "autoscaling.knative.dev/") || strings.HasPrefix(k, "networking.internal.knative.dev/") {
			return true
		}
	}
	switch kind {
	case "CustomResourceDefinition":
		return gantryGroup(o.GetName())
	case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
		return strings.HasSuffix(o.GetName(), "knative.dev") || strings.HasSuffix(o.GetName(), ".gantry.dev")
	case "Lease":
		return o.GetName() == serving.LeaderElectionID
	}
	return false
}

func gantryGroup(crdName string) bool {
	return strings.HasSuffix(crdName, ".knative.dev") || strings.HasSuffix(crdName, ".gantry.dev")
}
