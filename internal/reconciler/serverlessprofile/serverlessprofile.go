// Package serverlessprofile reconciles ServerlessProfiles: a profile becomes Active once the
// cache the pod admission webhook reads holds it (the controller reads the same cache), or
// CreateFailed when it is invalid (it reached the API without the validating webhook); on
// deletion a finalizer keeps it in phase Deleting until every pod it selected (the pods
// labelled with its name) is deleted, so their controllers recreate them wherever they now
// belong.
package serverlessprofile

import (
	"context"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/gantry-run/gantry/pkg/apis"
	sv1alpha1 "github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// Finalizer holds a profile being deleted until its pods are deleted.
const Finalizer = sv1alpha1.GroupName + "/stop-pods"

// Reconciler converges ServerlessProfiles.
type Reconciler struct {
	// Client reads profiles from the manager's cache and writes them.
	Client client.Client
	// Pods lists the pods of a profile from the API (no cache of every pod is kept for it).
	Pods client.Reader
	// Recorder records the phases' changes; nil records nothing.
	Recorder events.EventRecorder
}

// SetupWithManager registers the reconciler.
func (r *Reconciler) SetupWithManager(mgr manager.Manager) error {
	return ctrl.ControllerManagedBy(mgr).
		Named("serverlessprofile").
		For(&sv1alpha1.ServerlessProfile{}).
		Complete(r)
}

// Reconcile converges one profile.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	p := &sv1alpha1.ServerlessProfile{}
	if err := r.Client.Get(ctx, req.NamespacedName, p); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if p.DeletionTimestamp != nil {
		return reconcile.Result{}, r.finalize(ctx, p)
	}
	if !controllerutil.ContainsFinalizer(p, Finalizer) {
		base := p.DeepCopy()
		controllerutil.AddFinalizer(p, Finalizer)
		if err := r.Client.Patch(ctx, p, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return reconcile.Result{}, fmt.Errorf("adding the finalizer of ServerlessProfile %s: %w", p.Name, err)
		}
	}
	before := p.Status.DeepCopy()
	p.Status.InitializeConditions()
	if fe := p.Validate(apis.WithinCreate(ctx)); fe != nil {
		p.Status.MarkCreateFailed(fe.Error())
	} else {
		p.Status.MarkActive()
	}
	p.Status.ObservedGeneration = p.Generation
	p.Status.Selectors = p.Spec.Summary()
	return reconcile.Result{}, r.writeStatus(ctx, p, before)
}

// finalize deletes the profile's pods, then lets the profile go.
func (r *Reconciler) finalize(ctx context.Context, p *sv1alpha1.ServerlessProfile) error {
	if !controllerutil.ContainsFinalizer(p, Finalizer) {
		return nil
	}
	pods := &corev1.PodList{}
	if err := r.Pods.List(ctx, pods, client.MatchingLabels{sv1alpha1.ProfileLabel: p.Name}); err != nil {
		return r.deleteFailed(ctx, p, fmt.Errorf("listing the pods of ServerlessProfile %s: %w", p.Name, err))
	}
	before := p.Status.DeepCopy()
	p.Status.MarkDeleting(fmt.Sprintf("stopping %d pod(s); their controllers recreate them without this profile", len(pods.Items)))
	if err := r.writeStatus(ctx, p, before); err != nil {
		return err
	}
	var errs []error
	for i := range pods.Items {
		pod := &pods.Items[i]
		// The admission webhook never sees the system namespaces: a pod there carrying the
		// label was not selected by this profile.
		if pod.DeletionTimestamp != nil || slices.Contains(sv1alpha1.SystemNamespaces, pod.Namespace) {
			continue
		}
		err := r.Client.Delete(ctx, pod, client.Preconditions{UID: &pod.UID})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			errs = append(errs, fmt.Errorf("deleting pod %s/%s: %w", pod.Namespace, pod.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return r.deleteFailed(ctx, p, err)
	}
	r.event(p, corev1.EventTypeNormal, "Deleted", "Stopped %d pod(s)", len(pods.Items))
	base := p.DeepCopy()
	controllerutil.RemoveFinalizer(p, Finalizer)
	if err := r.Client.Patch(ctx, p, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the finalizer of ServerlessProfile %s: %w", p.Name, err)
	}
	return nil
}

// deleteFailed records err as the profile's DeleteFailed phase and returns it, so the
// deletion is retried.
func (r *Reconciler) deleteFailed(ctx context.Context, p *sv1alpha1.ServerlessProfile, err error) error {
	before := p.Status.DeepCopy()
	p.Status.MarkDeleteFailed(err.Error())
	return errors.Join(err, r.writeStatus(ctx, p, before))
}

// writeStatus writes p's status when it differs from before, with an event on a phase change.
func (r *Reconciler) writeStatus(ctx context.Context, p *sv1alpha1.ServerlessProfile, before *sv1alpha1.ServerlessProfileStatus) error {
	if equality.Semantic.DeepEqual(before, &p.Status) {
		return nil
	}
	if err := r.Client.Status().Update(ctx, p); err != nil {
		return fmt.Errorf("updating the status of ServerlessProfile %s: %w", p.Name, err)
	}
	if before.Phase != p.Status.Phase {
		typ, msg := corev1.EventTypeNormal, string(p.Status.Phase)
		if c := p.Status.GetCondition(apis.ConditionReady); c != nil && c.Message != "" {
			msg += ": " + c.Message
		}
		if p.Status.Phase == sv1alpha1.PhaseCreateFailed || p.Status.Phase == sv1alpha1.PhaseDeleteFailed {
			typ = corev1.EventTypeWarning
		}
		r.event(p, typ, string(p.Status.Phase), "%s", msg)
	}
	return nil
}

func (r *Reconciler) event(p *sv1alpha1.ServerlessProfile, typ, reason, format string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(p, nil, typ, reason, "Reconcile", format, args...)
	}
}
