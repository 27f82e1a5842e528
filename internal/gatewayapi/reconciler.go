package gatewayapi

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/gantry-run/gantry/internal/reconciler/revision/resources"
	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// Reconciler keeps every Ingress's HTTPRoutes as MakeHTTPRoutes makes them: it creates the
// missing, updates the changed and deletes those no rule makes any more. HTTPRoutes are
// owned by their Ingress, so the garbage collector deletes them with it.
type Reconciler struct {
	Client   client.Client
	Gateways Gateways
}

// SetupWithManager watches Ingresses, the HTTPRoutes they own, and Revisions (whose protocol
// gives their backendRefs' port). The manager's scheme must know gateway.networking.k8s.io/v1,
// and the cluster must serve HTTPRoutes.
func (r *Reconciler) SetupWithManager(_ context.Context, mgr manager.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("gateway-api").
		For(&netv1alpha1.Ingress{}).
		Owns(&gwv1.HTTPRoute{}).
		Watches(&servingv1.Revision{}, handler.EnqueueRequestsFromMapFunc(r.revisionToIngresses)).
		Complete(r)
}

// revisionToIngresses: a revision wakes the Ingresses of its namespace that split traffic to
// it (a route made before the revision was read gets its port).
func (r *Reconciler) revisionToIngresses(ctx context.Context, o client.Object) []reconcile.Request {
	ings := &netv1alpha1.IngressList{}
	if err := r.Client.List(ctx, ings, client.InNamespace(o.GetNamespace())); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range ings.Items {
		if splitsTo(&ings.Items[i], o.GetNamespace(), o.GetName()) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&ings.Items[i])})
		}
	}
	return out
}

// splitsTo says whether a path of ing sends a share to the revision ns/name.
func splitsTo(ing *netv1alpha1.Ingress, ns, name string) bool {
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for _, path := range rule.HTTP.Paths {
			for _, s := range path.Splits {
				if s.ServiceNamespace == ns && s.ServiceName == name {
					return true
				}
			}
		}
	}
	return false
}

// h2c reads which of the revisions ing splits traffic to speak h2c; a revision not found
// (not made yet, or gone) is taken as HTTP/1.
func (r *Reconciler) h2c(ctx context.Context, ing *netv1alpha1.Ingress) (H2C, error) {
	speaks := map[types.NamespacedName]bool{}
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for _, path := range rule.HTTP.Paths {
			for _, s := range path.Splits {
				key := types.NamespacedName{Namespace: s.ServiceNamespace, Name: s.ServiceName}
				if _, ok := speaks[key]; ok {
					continue
				}
				rev := &servingv1.Revision{}
				switch err := r.Client.Get(ctx, key, rev); {
				case err == nil:
					speaks[key] = resources.H2C(rev)
				case apierrors.IsNotFound(err):
					speaks[key] = false
				default:
					return nil, fmt.Errorf("reading revision %s: %w", key, err)
				}
			}
		}
	}
	return func(ns, name string) bool { return speaks[types.NamespacedName{Namespace: ns, Name: name}] }, nil
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
	h2c, err := r.h2c(ctx, ing)
	if err != nil {
		return ctrl.Result{}, err
	}
	want := map[string]bool{}
	var errs []error
	for _, route := range MakeHTTPRoutes(ing, r.Gateways, h2c) {
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
