package install

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/gatewayapi"
	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// Switching --ingress on a re-install. The default ingress (Gantry's gateway behind its
// Service) makes nothing per revision that gateway-api does not make too; gateway-api makes,
// besides, the activator's Service, every revision's backend Service and EndpointSlice, and
// every Ingress's HTTPRoutes. A re-install with the default ingress removes those once the
// controller of the new mode has replaced every replica of the old (which would make them
// again); it looks for them on every install with the default ingress, so one whose earlier
// run stopped half-way (a timeout) finishes the switch. A re-install with gateway-api finds
// nothing of the other mode to remove: its controller makes what it needs.

// installedIngress is the --ingress of the controller in the cluster, "" when there is none.
func installedIngress(ctx context.Context, c client.Client) (string, error) {
	d := &appsv1.Deployment{}
	switch err := c.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: ControllerName}, d); {
	case apierrors.IsNotFound(err):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("reading deployment %s/%s: %w", Namespace, ControllerName, err)
	}
	for _, ctr := range d.Spec.Template.Spec.Containers {
		for _, a := range ctr.Args {
			if v, ok := strings.CutPrefix(a, "--ingress="); ok {
				return v, nil
			}
		}
	}
	return IngressGateway, nil
}

// waitRollout waits until every replica of the controller runs the current template: no
// replica of an earlier install is left, not even one still stopping (the Deployment's
// counts leave those out, and it would make again what is removed).
func waitRollout(ctx context.Context, c client.Client) error {
	var last string
	err := wait.PollUntilContextCancel(ctx, pollInterval, true, func(ctx context.Context) (bool, error) {
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: ControllerName}, d); err != nil {
			last = err.Error()
			return false, nil
		}
		pods := &corev1.PodList{}
		if err := c.List(ctx, pods, client.InNamespace(Namespace), client.MatchingLabels{"app": ControllerName}); err != nil {
			last = err.Error()
			return false, nil
		}
		stopping := 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				stopping++
			}
		}
		s := d.Status
		last = fmt.Sprintf("%d of %d replicas updated, %d pods, %d of them stopping", s.UpdatedReplicas, ptrOr(d.Spec.Replicas, 1), len(pods.Items), stopping)
		return s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == ptrOr(d.Spec.Replicas, 1) &&
			s.Replicas == s.UpdatedReplicas && stopping == 0 && len(pods.Items) == int(s.UpdatedReplicas), nil
	})
	if err != nil {
		return fmt.Errorf("the replicas of the earlier install of %s/%s did not go (%s): %w", Namespace, ControllerName, last, err)
	}
	return nil
}

// gatewayAPIKinds are the kinds of what --ingress gateway-api makes per revision and Ingress.
var gatewayAPIKinds = []schema.GroupVersionKind{
	{Version: "v1", Kind: "ServiceList"},
	{Group: "discovery.k8s.io", Version: "v1", Kind: "EndpointSliceList"},
	{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRouteList"},
}

// madeByGatewayAPI says whether o, of kind, is what the gateway-api ingress's controllers
// made: a revision's backend Service (no selector, Knative's public service labels, controlled
// by the Revision), its EndpointSlice (managed by gatewayapi.EndpointSliceManager), or an
// Ingress's HTTPRoute (labelled with it, controlled by it).
func madeByGatewayAPI(kind string, o *unstructured.Unstructured) bool {
	owner := metav1.GetControllerOfNoCopy(o)
	controlledBy := func(gv schema.GroupVersion, k string) bool {
		return owner != nil && owner.APIVersion == gv.String() && owner.Kind == k
	}
	l := o.GetLabels()
	switch kind {
	case "Service":
		selector, _, _ := unstructured.NestedMap(o.Object, "spec", "selector")
		return len(selector) == 0 && l[netv1alpha1.ServiceTypeLabelKey] == netv1alpha1.ServiceTypePublic &&
			l[netv1alpha1.ServerlessServiceLabelKey] != "" && controlledBy(servingv1.SchemeGroupVersion, "Revision")
	case "EndpointSlice":
		return l["endpointslice.kubernetes.io/managed-by"] == gatewayapi.EndpointSliceManager && controlledBy(servingv1.SchemeGroupVersion, "Revision")
	case "HTTPRoute":
		return l[gatewayapi.IngressLabel] != "" && controlledBy(netv1alpha1.SchemeGroupVersion, "Ingress")
	}
	return false
}

// removeGatewayAPI deletes what --ingress gateway-api made beyond the default ingress: the
// activator's Service and every object madeByGatewayAPI. A kind the cluster does not serve
// (HTTPRoute without Gateway API) has nothing to delete.
func removeGatewayAPI(ctx context.Context, c client.Client, log *slog.Logger) error {
	var errs []error
	del := func(o client.Object, what string) {
		if err := c.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting %s: %w", what, err))
			return
		}
		log.Info("removed what --ingress gateway-api made", "object", what)
	}
	activator := &unstructured.Unstructured{}
	activator.SetAPIVersion("v1")
	activator.SetKind("Service")
	activator.SetNamespace(Namespace)
	activator.SetName(ActivatorServiceName)
	if err := c.Get(ctx, client.ObjectKeyFromObject(activator), activator); err == nil && activator.GetLabels()["app.kubernetes.io/managed-by"] == FieldManager {
		del(activator, "Service "+Namespace+"/"+ActivatorServiceName)
	} else if err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("reading Service %s/%s: %w", Namespace, ActivatorServiceName, err))
	}
	for _, gvk := range gatewayAPIKinds {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(gvk)
		if err := c.List(ctx, l); err != nil {
			if apimeta.IsNoMatchError(err) {
				continue
			}
			errs = append(errs, fmt.Errorf("listing %s: %w", gvk.Kind, err))
			continue
		}
		kind := strings.TrimSuffix(gvk.Kind, "List")
		for i := range l.Items {
			if o := &l.Items[i]; madeByGatewayAPI(kind, o) {
				del(o, kind+" "+objName(o))
			}
		}
	}
	return errors.Join(errs...)
}

// switchIngress removes, on an install with the default ingress (now), what gateway-api made,
// once no replica of an earlier controller (was: its --ingress, "" when there was none) is
// left to make it again.
func switchIngress(ctx context.Context, c client.Client, was, now string, log *slog.Logger) error {
	if now == IngressGatewayAPI {
		return nil
	}
	if was == IngressGatewayAPI {
		log.Info("--ingress changed: waiting for the earlier controller's replicas to go", "was", was, "now", now)
	}
	if err := waitRollout(ctx, c); err != nil {
		return err
	}
	return removeGatewayAPI(ctx, c, log)
}
