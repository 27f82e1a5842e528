package gatewayapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/gantry-run/gantry/internal/reconciler/kmeta"
	"github.com/gantry-run/gantry/internal/reconciler/revision/resources"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// BackendReconciler keeps every Revision's backend (MakeBackendService and
// MakeBackendEndpointSlice): the Service the HTTPRoutes name and its endpoints, following the
// revision's PodAutoscaler (its mode is the one answer to "is the activator in the path"),
// the EndpointSlices of its private Service and those of the activator's Service. Both are
// owned by the Revision, so the garbage collector deletes them with it.
type BackendReconciler struct {
	Client client.Client
	// Activator is the Service in front of the activator's port (gantry-system/gantry-activator).
	Activator types.NamespacedName
	Logger    *slog.Logger
}

// SetupWithManager watches Revisions, their Services and PodAutoscalers, and all
// EndpointSlices: a revision's own wake it, the activator's wake every revision.
func (r *BackendReconciler) SetupWithManager(_ context.Context, mgr manager.Manager) error {
	if r.Activator.Name == "" || r.Activator.Namespace == "" {
		return errors.New("gateway-api backends: no activator Service named")
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	sameName := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(o)}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("gateway-api-backends").
		For(&servingv1.Revision{}).
		Owns(&corev1.Service{}).
		Watches(&pav1alpha1.PodAutoscaler{}, sameName).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(r.sliceToRevisions)).
		Complete(r)
}

// sliceToRevisions: a revision's slices (private or its backend's) wake that revision; the
// activator's wake all.
func (r *BackendReconciler) sliceToRevisions(ctx context.Context, o client.Object) []reconcile.Request {
	if o.GetNamespace() == r.Activator.Namespace && o.GetLabels()[discoveryv1.LabelServiceName] == r.Activator.Name {
		revs := &servingv1.RevisionList{}
		if err := r.Client.List(ctx, revs); err != nil {
			r.Logger.Warn("listing revisions for the activator's endpoints", "err", err)
			return nil
		}
		out := make([]reconcile.Request, 0, len(revs.Items))
		for i := range revs.Items {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&revs.Items[i])})
		}
		return out
	}
	if name := o.GetLabels()[servingv1.RevisionLabelKey]; name != "" {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
	}
	return nil
}

// Reconcile converges one revision's backend Service and EndpointSlice.
func (r *BackendReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rev := &servingv1.Revision{}
	if err := r.Client.Get(ctx, req.NamespacedName, rev); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if rev.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	var b Backends
	pa := &pav1alpha1.PodAutoscaler{}
	switch err := r.Client.Get(ctx, req.NamespacedName, pa); {
	case err == nil:
		b.Serve = pa.Status.Mode == pav1alpha1.ModeServe
		b.H2C = pa.Spec.ProtocolType == pav1alpha1.ProtocolH2C
	case !apierrors.IsNotFound(err):
		return ctrl.Result{}, fmt.Errorf("reading PodAutoscaler %s: %w", req.NamespacedName, err)
	}
	pods := &discoveryv1.EndpointSliceList{}
	if err := r.Client.List(ctx, pods, client.InNamespace(rev.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: resources.PrivateServiceName(rev)}); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing the endpoints of %s: %w", resources.PrivateServiceName(rev), err)
	}
	act := &discoveryv1.EndpointSliceList{}
	if err := r.Client.List(ctx, act, client.InNamespace(r.Activator.Namespace),
		client.MatchingLabels{discoveryv1.LabelServiceName: r.Activator.Name}); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing the endpoints of %s: %w", r.Activator, err)
	}
	b.Pods, b.Activator = pods.Items, act.Items

	svc := MakeBackendService(rev, b.H2C)
	if _, err := kmeta.ReconcileChild(ctx, r.Client, rev, svc, &corev1.Service{},
		func(cur, want *corev1.Service) bool {
			return equality.Semantic.DeepEqual(want.Spec.Ports, cur.Spec.Ports) && len(cur.Spec.Selector) == 0 &&
				equality.Semantic.DeepEqual(want.Labels, cur.Labels)
		},
		func(cur, want *corev1.Service) {
			cur.Spec.Ports, cur.Spec.Selector, cur.Labels = want.Spec.Ports, nil, want.Labels
		}); err != nil {
		return ctrl.Result{}, err
	}

	slice, _ := MakeBackendEndpointSlice(rev, b)
	// A slice's address type cannot change: one of the other type goes first.
	cur := &discoveryv1.EndpointSlice{}
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(slice), cur); err == nil &&
		metav1.IsControlledBy(cur, rev) && cur.AddressType != slice.AddressType {
		if err := r.Client.Delete(ctx, cur); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("deleting EndpointSlice %s/%s of address type %s: %w", cur.Namespace, cur.Name, cur.AddressType, err)
		}
	}
	_, err := kmeta.ReconcileChild(ctx, r.Client, rev, slice, &discoveryv1.EndpointSlice{},
		func(cur, want *discoveryv1.EndpointSlice) bool {
			return cur.AddressType == want.AddressType &&
				equality.Semantic.DeepEqual(want.Endpoints, cur.Endpoints) &&
				equality.Semantic.DeepEqual(want.Ports, cur.Ports) &&
				equality.Semantic.DeepEqual(want.Labels, cur.Labels)
		},
		func(cur, want *discoveryv1.EndpointSlice) {
			cur.Endpoints, cur.Ports, cur.Labels = want.Endpoints, want.Ports, want.Labels
		})
	return ctrl.Result{}, err
}
