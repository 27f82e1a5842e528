package gatewayapi

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
)

// Reconciler keeps every Ingress's HTTPRoutes as MakeHTTPRoutes makes them: it creates the
// missing, updates the changed and deletes those no rule makes any more. HTTPRoutes are
// owned by their Ingress, so the garbage collector deletes them with it.
type Reconciler struct {
	Client   client.Client
	Gateways Gateways
}

// SetupWithManager watches Ingresses and the HTTPRoutes they own. The manager's scheme must
// know gateway.networking.k8s.io/v1, and the cluster must serve HTTPRoutes.
func (r *Reconciler) SetupWithManager(_ context.Context, mgr manager.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("gateway-api").
		For(&netv1alpha1.Ingress{}).
		Owns(&gwv1.HTTPRoute{}).
		Complete(r)
}

// Reconcile converges one Ingress's HTTPRoutes.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ing := &netv1alpha1.Ingress{}
	if err := r.Client.Get(ctx, req.NamespacedName, ing); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if ing.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	want := map[string]bool{}
	var errs []error
	for _, route := range MakeHTTPRoutes(ing, r.Gateways) {
		want[route.Name] = true
		errs = append(errs, r.apply(ctx, ing, route))
	}
	have := &gwv1.HTTPRouteList{}
	if err := r.Client.List(ctx, have, client.InNamespace(ing.Namespace), client.MatchingLabels{IngressLabel: ing.Name}); err != nil {
		return ctrl.Result{}, errors.Join(append(errs, fmt.Errorf("listing HTTPRoutes: %w", err))...)
	}
	for i := range have.Items {
		route := &have.Items[i]
		if want[route.Name] || !metav1.IsControlledBy(route, ing) {
			continue
		}
		if err := r.Client.Delete(ctx, route); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting HTTPRoute %s: %w", route.Name, err))
		}
	}
	return ctrl.Result{}, errors.Join(errs...)
}

// apply creates want, or updates the HTTPRoute of its name when ing controls it and it
// differs; an HTTPRoute of that name that ing does not control is left alone, with an error.
func (r *Reconciler) apply(ctx context.Context, ing *netv1alpha1.Ingress, want *gwv1.HTTPRoute) error {
	cur := &gwv1.HTTPRoute{}
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), cur)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.Client.Create(ctx, want); err != nil {
			return fmt.Errorf("creating HTTPRoute %s: %w", want.Name, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("reading HTTPRoute %s: %w", want.Name, err)
	case !metav1.IsControlledBy(cur, ing):
		return fmt.Errorf("HTTPRoute %s/%s exists and Ingress %s does not own it", cur.Namespace, cur.Name, ing.Name)
	}
	if equality.Semantic.DeepDerivative(want.Spec, cur.Spec) &&
		equality.Semantic.DeepEqual(want.Labels, cur.Labels) &&
		equality.Semantic.DeepEqual(want.Annotations, cur.Annotations) {
		return nil
	}
	cur.Spec, cur.Labels, cur.Annotations = want.Spec, want.Labels, want.Annotations
	if err := r.Client.Update(ctx, cur); err != nil {
		return fmt.Errorf("updating HTTPRoute %s: %w", want.Name, err)
	}
	return nil
}
