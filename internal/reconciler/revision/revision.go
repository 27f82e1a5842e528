// Package revision reconciles a Revision: it resolves image tags to digests once, at creation
// and in the background, runs the Revision as a Deployment with a Service in front of it, asks
// the autoscaler to scale it through a PodAutoscaler and reports that one's view of it (Active,
// the replica counts), and reports the precise reason when its pods cannot be placed, pulled or
// kept running.
package revision

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/gantry-run/gantry/internal/reconciler/kmeta"
	"github.com/gantry-run/gantry/internal/reconciler/revision/resources"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// Resolver turns an image reference into a digest reference (repo@sha256:…).
type Resolver interface {
	Resolve(ctx context.Context, image string) (string, error)
}

// Digest resolution runs beside the reconcile workers: this many resolutions at once, and
// this many images waiting before a revision is told to come back later.
const (
	resolveWorkers     = 16
	resolveQueueLength = 1024
	// resolverBusyRetry is when a revision that found the queue full asks again.
	resolverBusyRetry = 5 * time.Second
)

// Reconciler converges Revisions.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	// Resolver resolves image tags to digests; SetupWithManager runs it in the background.
	Resolver Resolver
	// Config gives the configuration in force (config-deployment: the queue-proxy, the
	// progress deadline, digest resolution); nil means the shipped defaults.
	Config config.Source

	// digests resolves in the background and wakes the revision when done; SetupWithManager
	// makes it and adds it to the manager.
	digests *digestResolver
}

// SetupWithManager registers the reconciler and its digest resolver; pods wake the Revision
// they belong to, and so do a change of its PodAutoscaler (the autoscaler's status) and the end
// of a Revision's digest resolution.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Resolver == nil {
		return errors.New("revision reconciler: no image resolver to resolve tags to digests")
	}
	resolved := make(chan event.TypedGenericEvent[*servingv1.Revision])
	r.digests = newDigestResolver(r.Resolver, clock.RealClock{}, resolveWorkers, resolveQueueLength, func(ctx context.Context, key types.NamespacedName) {
		rev := &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
		select {
		case resolved <- event.TypedGenericEvent[*servingv1.Revision]{Object: rev}:
		case <-ctx.Done():
		}
	})
	if err := mgr.Add(r.digests); err != nil {
		return fmt.Errorf("adding the digest resolver: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("revision").
		For(&servingv1.Revision{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&pav1alpha1.PodAutoscaler{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(podToRevision)).
		WatchesRawSource(source.Channel(resolved, &handler.TypedEnqueueRequestForObject[*servingv1.Revision]{})).
		Complete(r)
}

func podToRevision(_ context.Context, o client.Object) []reconcile.Request {
	name, ok := o.GetLabels()[servingv1.RevisionLabelKey]
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: name}}}
}

// Reconcile resolves digests, converges the Deployment, Service and PodAutoscaler, and reports
// status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ctx = kmeta.WithConfig(ctx, r.Config)
	var (
		seen   bool
		result ctrl.Result
	)
	rev := &servingv1.Revision{}
	err := kmeta.Converge(ctx, r.Client, req.NamespacedName, rev,
		func(rev *servingv1.Revision) *servingv1.RevisionStatus { return &rev.Status },
		func(ctx context.Context, rev *servingv1.Revision) error {
			seen = true
			rev.Status.InitializeConditions()
			var err error
			result, err = r.reconcile(ctx, rev)
			rev.Status.ObservedGeneration = rev.Generation
			return err
		},
		func(before *servingv1.RevisionStatus) { r.eventOnReadyChange(rev, before) })
	switch {
	case err != nil:
		return ctrl.Result{}, err
	case !seen && r.digests != nil:
		// The revision is gone or being deleted: what its resolution knows is of no use.
		r.digests.Forget(req.NamespacedName)
	}
	return result, nil
}

func (r *Reconciler) reconcile(ctx context.Context, rev *servingv1.Revision) (ctrl.Result, error) {
	if resolved, result, err := r.resolveDigests(ctx, rev); !resolved {
		return result, err
	}
	deploy, err := r.reconcileDeployment(ctx, rev)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.reconcileService(ctx, rev); err != nil {
		return ctrl.Result{}, err
	}
	pa, err := r.reconcilePodAutoscaler(ctx, rev)
	if err != nil {
		return ctrl.Result{}, err
	}
	pods := &corev1.PodList{}
	if wantsPods(deploy) {
		if err := r.Client.List(ctx, pods, client.InNamespace(rev.Namespace),
			client.MatchingLabels{servingv1.RevisionUID: string(rev.UID)}); err != nil {
			return ctrl.Result{}, fmt.Errorf("listing pods of revision %s: %w", rev.Name, err)
		}
	}
	reportHealth(rev, deploy, pods.Items, resources.InitialReplicas(rev, config.FromContextOrDefaults(ctx).Autoscaler))
	propagateAutoscalerStatus(&rev.Status, &pa.Status)
	return ctrl.Result{}, nil
}

// resolveDigests records each container's image digest, once: later reconciles reuse them,
// so the revision keeps running the exact image it was created with. The digests are
// resolved in the background; until they are known it reports false, and the revision is
// reconciled again when they are, or after result's delay when the resolver is full or the
// resolution failed.
func (r *Reconciler) resolveDigests(ctx context.Context, rev *servingv1.Revision) (bool, ctrl.Result, error) {
	if len(rev.Status.ContainerStatuses) == len(rev.Spec.Containers) {
		return true, ctrl.Result{}, nil
	}
	if r.digests == nil {
		return false, ctrl.Result{}, errors.New("revision reconciler: digest resolver not set up (SetupWithManager)")
	}
	cfg := config.FromContextOrDefaults(ctx).Deployment
	statuses, err := r.digests.Resolve(rev, cfg.RegistriesSkippingTagResolving, cfg.DigestResolutionTimeout)
	var rerr *resolveError
	switch {
	case errors.As(err, &rerr):
		// Recorded, not returned: the resolver's own back-off says when to try again.
		msg := fmt.Sprintf("Unable to fetch image %q: failed to resolve image to digest: %v", rerr.image, rerr.err)
		before := rev.Status.GetCondition(servingv1.RevisionConditionContainerHealthy).DeepCopy()
		rev.Status.MarkContainerMissing(msg)
		if !equality.Semantic.DeepEqual(before, rev.Status.GetCondition(servingv1.RevisionConditionContainerHealthy)) {
			r.Recorder.Eventf(rev, nil, corev1.EventTypeWarning, "ImageResolutionFailed", "Resolve", "%s", msg)
		}
		return false, ctrl.Result{RequeueAfter: rerr.retryAfter}, nil
	case errors.Is(err, errResolverBusy):
		rev.Status.MarkResourcesAvailableUnknown(servingv1.ReasonResolvingDigests, "Waiting for the digest resolver to have room.")
		return false, ctrl.Result{RequeueAfter: resolverBusyRetry}, nil
	case err != nil:
		return false, ctrl.Result{}, fmt.Errorf("resolving the images of revision %s/%s: %w", rev.Namespace, rev.Name, err)
	case statuses == nil:
		rev.Status.MarkResourcesAvailableUnknown(servingv1.ReasonResolvingDigests, "")
		return false, ctrl.Result{}, nil
	}
	rev.Status.ContainerStatuses = statuses
	return true, ctrl.Result{}, nil
}

func (r *Reconciler) reconcileDeployment(ctx context.Context, rev *servingv1.Revision) (*appsv1.Deployment, error) {
	want, cur := resources.MakeDeployment(rev, config.FromContextOrDefaults(ctx)), &appsv1.Deployment{}
	created, err := kmeta.ReconcileChild(ctx, r.Client, rev, want, cur, sameDeployment, applyDeployment)
	switch {
	case errors.Is(err, kmeta.ErrNotOwned):
		rev.Status.MarkResourcesAvailableFalse("NotOwned", fmt.Sprintf("There is an existing Deployment %q that we do not own.", want.Name))
		return nil, err
	case err != nil:
		// The API server could not be read or written: nothing is known to be wrong with the
		// revision, so its conditions stay and the reconcile is retried.
		// A conflict is another writer's update (the autoscaler's scale) met on the way: the
		// retry reads it; nothing is wrong that a warning should say.
		if !apierrors.IsConflict(err) {
			r.Recorder.Eventf(rev, nil, corev1.EventTypeWarning, "InternalError", "Reconcile", "Failed to reconcile Deployment %q: %v", want.Name, err)
		}
		return nil, err
	case created:
		rev.Status.MarkResourcesAvailableUnknown(servingv1.ReasonDeploying, "")
		rev.Status.MarkContainerHealthyUnknown(servingv1.ReasonDeploying, "")
		r.Recorder.Eventf(rev, want, corev1.EventTypeNormal, "Created", "Create", "Created Deployment %q", want.Name)
		return want, nil
	}
	return cur, nil
}

// sameDeployment reports whether cur already runs what want describes. The replica count
// belongs to the autoscaler once the Deployment exists, so it is not compared.
func sameDeployment(cur, want *appsv1.Deployment) bool {
	spec := want.Spec
	spec.Replicas = cur.Spec.Replicas
	return equality.Semantic.DeepDerivative(spec, cur.Spec) && equality.Semantic.DeepEqual(want.Labels, cur.Labels)
}

// applyDeployment makes cur run what want describes, at the replica count cur has.
func applyDeployment(cur, want *appsv1.Deployment) {
	replicas := cur.Spec.Replicas
	cur.Spec, cur.Labels, cur.Annotations = want.Spec, want.Labels, kmeta.UnionMaps(cur.Annotations, want.Annotations)
	cur.Spec.Replicas = replicas
}

func (r *Reconciler) reconcileService(ctx context.Context, rev *servingv1.Revision) error {
	want := resources.MakePrivateService(rev)
	_, err := kmeta.ReconcileChild(ctx, r.Client, rev, want, &corev1.Service{},
		func(cur, want *corev1.Service) bool {
			return equality.Semantic.DeepEqual(want.Spec.Ports, cur.Spec.Ports) && equality.Semantic.DeepEqual(want.Spec.Selector, cur.Spec.Selector)
		},
		func(cur, want *corev1.Service) {
			cur.Spec.Ports, cur.Spec.Selector = want.Spec.Ports, want.Spec.Selector
		})
	if errors.Is(err, kmeta.ErrNotOwned) {
		rev.Status.MarkResourcesAvailableFalse("NotOwned", fmt.Sprintf("There is an existing Service %q that we do not own.", want.Name))
	}
	return err
}

// reconcilePodAutoscaler makes rev's PodAutoscaler say what rev asks of the autoscaler: its
// spec, labels and annotations follow rev (a routing change reaches its reachability). Its
// status is the autoscaler's: it is read, never written. A new one has no status yet.
func (r *Reconciler) reconcilePodAutoscaler(ctx context.Context, rev *servingv1.Revision) (*pav1alpha1.PodAutoscaler, error) {
	// A revision that names no class gets config-autoscaler's when its PodAutoscaler is
	// made, and keeps it: a later change of the default applies to new revisions only.
	class := config.FromContextOrDefaults(ctx).Autoscaler.PodAutoscalerClass
	existing := &pav1alpha1.PodAutoscaler{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: rev.Namespace, Name: resources.PodAutoscalerName(rev)}, existing); err == nil {
		if c := existing.Annotations[autoscaling.ClassAnnotationKey]; c != "" {
			class = c
		}
	}
	want, cur := resources.MakePodAutoscaler(rev, class), &pav1alpha1.PodAutoscaler{}
	created, err := kmeta.ReconcileChild(ctx, r.Client, rev, want, cur, samePodAutoscaler,
		func(cur, want *pav1alpha1.PodAutoscaler) {
			cur.Spec, cur.Labels, cur.Annotations = want.Spec, want.Labels, want.Annotations
		})
	switch {
	case errors.Is(err, kmeta.ErrNotOwned):
		rev.Status.MarkResourcesAvailableFalse("NotOwned", fmt.Sprintf("There is an existing PodAutoscaler %q that we do not own.", want.Name))
		return nil, err
	case err != nil:
		if !apierrors.IsConflict(err) {
			r.Recorder.Eventf(rev, nil, corev1.EventTypeWarning, "InternalError", "Reconcile", "Failed to reconcile PodAutoscaler %q: %v", want.Name, err)
		}
		return nil, err
	case created:
		return want, nil
	}
	return cur, nil
}

// samePodAutoscaler reports whether cur already asks what want does. The annotations are the
// revision's settings, so they are compared whole: a setting removed from the revision goes.
func samePodAutoscaler(cur, want *pav1alpha1.PodAutoscaler) bool {
	return equality.Semantic.DeepEqual(want.Spec, cur.Spec) &&
		equality.Semantic.DeepEqual(want.Labels, cur.Labels) &&
		equality.Semantic.DeepEqual(want.Annotations, cur.Annotations)
}

func (r *Reconciler) eventOnReadyChange(rev *servingv1.Revision, before *servingv1.RevisionStatus) {
	was, now := before.GetCondition(servingv1.RevisionConditionReady), rev.Status.GetCondition(servingv1.RevisionConditionReady)
	if now == nil || (was != nil && was.Status == now.Status && was.Reason == now.Reason) {
		return
	}
	switch {
	case now.IsTrue():
		r.Recorder.Eventf(rev, nil, corev1.EventTypeNormal, "RevisionReady", "Reconcile", "Revision becomes ready upon all resources being ready")
	case now.IsFalse():
		r.Recorder.Eventf(rev, nil, corev1.EventTypeWarning, now.Reason, "Reconcile", "%s", now.Message)
	}
}
