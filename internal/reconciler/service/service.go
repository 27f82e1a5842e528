// Package service reconciles a Knative Service into the Configuration and Route of the same
// name, and mirrors their status on the Service.
package service

import (
	"context"
	"errors"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/reconciler/kmeta"
	"github.com/gantry-run/gantry/internal/reconciler/service/resources"
	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// Reconciler converges Services.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	// Config gives the configuration in force; nil means the shipped defaults. The webhook has
	// already applied config-defaults to the Service, so its children are copied as they are.
	Config config.Source
}

// SetupWithManager registers the reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("service").
		For(&servingv1.Service{}).
		Owns(&servingv1.Configuration{}).
		Owns(&servingv1.Route{}).
		Complete(r)
}

// Reconcile makes the Service's children match it and copies their status back.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ctx = kmeta.WithConfig(ctx, r.Config)
	svc := &servingv1.Service{}
	return ctrl.Result{}, kmeta.Converge(ctx, r.Client, req.NamespacedName, svc,
		func(s *servingv1.Service) *servingv1.ServiceStatus { return &s.Status },
		r.reconcile,
		func(before *servingv1.ServiceStatus) { r.eventOnReadyChange(svc, before) })
}

// reconcile makes the Service's children match it and copies their status back.
func (r *Reconciler) reconcile(ctx context.Context, svc *servingv1.Service) error {
	svc.Status.InitializeConditions()
	cfg, cfgErr := r.reconcileConfiguration(ctx, svc)
	route, routeErr := r.reconcileRoute(ctx, svc)
	if cfg != nil {
		svc.Status.PropagateConfigurationStatus(&cfg.Status)
		svc.Status.ConfigurationStatusFields = cfg.Status.ConfigurationStatusFields
	}
	if route != nil {
		svc.Status.PropagateRouteStatus(&route.Status)
		svc.Status.RouteStatusFields = route.Status.RouteStatusFields
	}
	svc.Status.ObservedGeneration = svc.Generation
	return errors.Join(cfgErr, routeErr)
}

func (r *Reconciler) reconcileConfiguration(ctx context.Context, svc *servingv1.Service) (*servingv1.Configuration, error) {
	want, cur := resources.MakeConfiguration(svc), &servingv1.Configuration{}
	created, err := kmeta.ReconcileChild(ctx, r.Client, svc, want, cur,
		func(cur, want *servingv1.Configuration) bool {
			return equality.Semantic.DeepEqual(cur.Spec, want.Spec) && sameMeta(cur, want)
		},
		func(cur, want *servingv1.Configuration) {
			cur.Spec, cur.Labels, cur.Annotations = want.Spec, want.Labels, want.Annotations
		})
	return childResult(r, svc, "Configuration", want, cur, created, err, svc.Status.MarkConfigurationNotOwned, svc.Status.MarkConfigurationNotReconciled)
}

func (r *Reconciler) reconcileRoute(ctx context.Context, svc *servingv1.Service) (*servingv1.Route, error) {
	want, cur := resources.MakeRoute(svc), &servingv1.Route{}
	created, err := kmeta.ReconcileChild(ctx, r.Client, svc, want, cur,
		func(cur, want *servingv1.Route) bool {
			return equality.Semantic.DeepEqual(cur.Spec, want.Spec) && sameMeta(cur, want)
		},
		func(cur, want *servingv1.Route) {
			cur.Spec, cur.Labels, cur.Annotations = want.Spec, want.Labels, want.Annotations
		})
	return childResult(r, svc, "Route", want, cur, created, err, svc.Status.MarkRouteNotOwned, svc.Status.MarkRouteNotReconciled)
}

func sameMeta(cur, want metav1.Object) bool {
	return equality.Semantic.DeepEqual(cur.GetLabels(), want.GetLabels()) &&
		equality.Semantic.DeepEqual(cur.GetAnnotations(), want.GetAnnotations())
}

// childResult turns the outcome of reconciling one child into the Service's conditions and
// events, and returns the child as stored.
func childResult[T client.Object](r *Reconciler, svc *servingv1.Service, kind string, want, cur T, created bool, err error,
	notOwned func(string), notReconciled func()) (T, error) {
	var zero T
	switch {
	case errors.Is(err, kmeta.ErrNotOwned):
		notOwned(want.GetName())
		return zero, err
	case err != nil:
		notReconciled()
		// A conflict is another writer's update met on the way: the retry reads it.
		if !apierrors.IsConflict(err) {
			r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, "InternalError", "Reconcile", "Failed to reconcile %s %q: %v", kind, want.GetName(), err)
		}
		return zero, err
	case created:
		r.Recorder.Eventf(svc, want, corev1.EventTypeNormal, "Created", "Create", "Created %s %q", kind, want.GetName())
		return want, nil
	}
	return cur, nil
}

func (r *Reconciler) eventOnReadyChange(svc *servingv1.Service, before *servingv1.ServiceStatus) {
	was, now := before.GetCondition(servingv1.ServiceConditionReady), svc.Status.GetCondition(servingv1.ServiceConditionReady)
	if now == nil || (was != nil && was.Status == now.Status) {
		return
	}
	if now.IsTrue() {
		r.Recorder.Eventf(svc, nil, corev1.EventTypeNormal, "Ready", "Reconcile", "Service is ready")
	} else if now.IsFalse() {
		r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, now.Reason, "Reconcile", "%s", now.Message)
	}
}
