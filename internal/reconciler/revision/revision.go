// Package revision reconciles a Revision: it resolves image tags to digests once, at creation,
// runs the Revision as a Deployment with a Service in front of it, and reports the precise
// reason when its pods cannot be placed, pulled or kept running.
package revision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/gantry-run/gantry/internal/reconciler/kmeta"
	"github.com/gantry-run/gantry/internal/reconciler/revision/resources"
	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// Resolver turns an image reference into a digest reference (repo@sha256:…).
type Resolver interface {
	Resolve(ctx context.Context, image string) (string, error)
}

// Reconciler converges Revisions.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Resolver Resolver
	// Config gives the configuration in force (config-deployment: the queue-proxy, the
	// progress deadline, digest resolution); nil means the shipped defaults.
	Config config.Source
}

// SetupWithManager registers the reconciler; pods wake the Revision they belong to.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("revision").
		For(&servingv1.Revision{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(podToRevision)).
		Complete(r)
}

func podToRevision(_ context.Context, o client.Object) []reconcile.Request {
	name, ok := o.GetLabels()[servingv1.RevisionLabelKey]
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: name}}}
}

// Reconcile resolves digests, converges the Deployment and Service, and reports status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ctx = kmeta.WithConfig(ctx, r.Config)
	rev := &servingv1.Revision{}
	return ctrl.Result{}, kmeta.Converge(ctx, r.Client, req.NamespacedName, rev,
		func(rev *servingv1.Revision) *servingv1.RevisionStatus { return &rev.Status },
		func(ctx context.Context, rev *servingv1.Revision) error {
			rev.Status.InitializeConditions()
			err := r.reconcile(ctx, rev)
			rev.Status.ObservedGeneration = rev.Generation
			return err
		},
		func(before *servingv1.RevisionStatus) { r.eventOnReadyChange(rev, before) })
}

func (r *Reconciler) reconcile(ctx context.Context, rev *servingv1.Revision) error {
	if err := r.resolveDigests(ctx, rev); err != nil {
		return err
	}
	deploy, err := r.reconcileDeployment(ctx, rev)
	if err != nil {
		return err
	}
	if err := r.reconcileService(ctx, rev); err != nil {
		return err
	}
	pods := &corev1.PodList{}
	if wantsPods(deploy) {
		if err := r.Client.List(ctx, pods, client.InNamespace(rev.Namespace),
			client.MatchingLabels{servingv1.RevisionUID: string(rev.UID)}); err != nil {
			return fmt.Errorf("listing pods of revision %s: %w", rev.Name, err)
		}
	}
	reportHealth(rev, deploy, pods.Items)
	return nil
}

// resolveDigests records each container's image digest, once: later reconciles reuse them,
// so the revision keeps running the exact image it was created with.
func (r *Reconciler) resolveDigests(ctx context.Context, rev *servingv1.Revision) error {
	if len(rev.Status.ContainerStatuses) == len(rev.Spec.Containers) {
		return nil
	}
	statuses := make([]servingv1.ContainerStatus, 0, len(rev.Spec.Containers))
	for _, c := range rev.Spec.Containers {
		digest, err := r.resolve(ctx, c.Image)
		if err != nil {
			msg := fmt.Sprintf("Unable to fetch image %q: %v", c.Image, err)
			rev.Status.MarkContainerMissing(msg)
			r.Recorder.Eventf(rev, nil, corev1.EventTypeWarning, "ImageResolutionFailed", "Resolve", "%s", msg)
			return fmt.Errorf("resolving image of container %s in revision %s: %w", c.Name, rev.Name, err)
		}
		statuses = append(statuses, servingv1.ContainerStatus{Name: c.Name, ImageDigest: digest})
	}
	rev.Status.ContainerStatuses = statuses
	return nil
}

func (r *Reconciler) resolve(ctx context.Context, image string) (string, error) {
	if strings.Contains(image, "@sha256:") {
		return image, nil
	}
	cfg := config.FromContextOrDefaults(ctx).Deployment
	registry, _, _ := strings.Cut(image, "/")
	if slices.Contains(cfg.RegistriesSkippingTagResolving, registry) {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.DigestResolutionTimeout)
	defer cancel()
	return r.Resolver.Resolve(ctx, image)
}

func (r *Reconciler) reconcileDeployment(ctx context.Context, rev *servingv1.Revision) (*appsv1.Deployment, error) {
	want, cur := resources.MakeDeployment(rev, config.FromContextOrDefaults(ctx).Deployment), &appsv1.Deployment{}
	created, err := kmeta.ReconcileChild(ctx, r.Client, rev, want, cur, sameDeployment, applyDeployment)
	switch {
	case errors.Is(err, kmeta.ErrNotOwned):
		rev.Status.MarkResourcesAvailableFalse("NotOwned", fmt.Sprintf("There is an existing Deployment %q that we do not own.", want.Name))
		return nil, err
	case err != nil:
		// The API server could not be read or written: nothing is known to be wrong with the
		// revision, so its conditions stay and the reconcile is retried.
		r.Recorder.Eventf(rev, nil, corev1.EventTypeWarning, "InternalError", "Reconcile", "Failed to reconcile Deployment %q: %v", want.Name, err)
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
