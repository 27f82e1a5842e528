// Package service reconciles a Knative Service into the Configuration and Route of the same
// name, and mirrors their status on the Service.
package service

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/reconciler/service/resources"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// Reconciler converges Services.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
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
	svc := &servingv1.Service{}
	if err := r.Client.Get(ctx, req.NamespacedName, svc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !svc.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	before := svc.Status.DeepCopy()
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
	if !equality.Semantic.DeepEqual(before, &svc.Status) {
		if err := r.Client.Status().Update(ctx, svc); err != nil {
			return ctrl.Result{}, fmt.Errorf("updating status of service %s: %w", req, err)
		}
		r.eventOnReadyChange(svc, before)
	}
	if cfgErr != nil {
		return ctrl.Result{}, cfgErr
	}
	return ctrl.Result{}, routeErr
}

func (r *Reconciler) reconcileConfiguration(ctx context.Context, svc *servingv1.Service) (*servingv1.Configuration, error) {
	want := resources.MakeConfiguration(svc)
	cur := &servingv1.Configuration{}
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), cur)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.Client.Create(ctx, want); err != nil {
			r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, "CreationFailed", "Create", "Failed to create Configuration %q: %v", want.Name, err)
			svc.Status.MarkConfigurationNotReconciled()
			return nil, fmt.Errorf("creating configuration %s/%s: %w", want.Namespace, want.Name, err)
		}
		r.Recorder.Eventf(svc, want, corev1.EventTypeNormal, "Created", "Create", "Created Configuration %q", want.Name)
		return want, nil
	case err != nil:
		return nil, err
	case !metav1.IsControlledBy(cur, svc):
		svc.Status.MarkConfigurationNotOwned(cur.Name)
		return nil, fmt.Errorf("service %s/%s does not own configuration %s", svc.Namespace, svc.Name, cur.Name)
	}
	if equality.Semantic.DeepEqual(cur.Spec, want.Spec) && equality.Semantic.DeepEqual(cur.Labels, want.Labels) &&
		equality.Semantic.DeepEqual(cur.Annotations, want.Annotations) {
		return cur, nil
	}
	cur.Spec, cur.Labels, cur.Annotations = want.Spec, want.Labels, want.Annotations
	if err := r.Client.Update(ctx, cur); err != nil {
		svc.Status.MarkConfigurationNotReconciled()
		return nil, fmt.Errorf("updating configuration %s/%s: %w", cur.Namespace, cur.Name, err)
	}
	return cur, nil
}

func (r *Reconciler) reconcileRoute(ctx context.Context, svc *servingv1.Service) (*servingv1.Route, error) {
	want := resources.MakeRoute(svc)
	cur := &servingv1.Route{}
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), cur)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.Client.Create(ctx, want); err != nil {
			r.Recorder.Eventf(svc, nil, corev1.EventTypeWarning, "CreationFailed", "Create", "Failed to create Route %q: %v", want.Name, err)
			svc.Status.MarkRouteNotReconciled()
			return nil, fmt.Errorf("creating route %s/%s: %w", want.Namespace, want.Name, err)
		}
		r.Recorder.Eventf(svc, want, corev1.EventTypeNormal, "Created", "Create", "Created Route %q", want.Name)
		return want, nil
	case err != nil:
		return nil, err
	case !metav1.IsControlledBy(cur, svc):
		svc.Status.MarkRouteNotOwned(cur.Name)
		return nil, fmt.Errorf("service %s/%s does not own route %s", svc.Namespace, svc.Name, cur.Name)
	}
	if equality.Semantic.DeepEqual(cur.Spec, want.Spec) && equality.Semantic.DeepEqual(cur.Labels, want.Labels) &&
		equality.Semantic.DeepEqual(cur.Annotations, want.Annotations) {
		return cur, nil
	}
	cur.Spec, cur.Labels, cur.Annotations = want.Spec, want.Labels, want.Annotations
	if err := r.Client.Update(ctx, cur); err != nil {
		svc.Status.MarkRouteNotReconciled()
		return nil, fmt.Errorf("updating route %s/%s: %w", cur.Namespace, cur.Name, err)
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
