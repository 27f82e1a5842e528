package hpa

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/gantry-run/gantry/internal/reconciler/kmeta"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	"github.com/gantry-run/gantry/pkg/apis/config"
)

// Options configure a Reconciler.
type Options struct {
	// Client reads PodAutoscalers, HPAs and Deployments through the manager's cache and
	// writes HPAs and statuses.
	Client client.Client
	// Config is the configuration in force (config-autoscaler's min-scale and max-scale).
	Config config.Source
	Logger *slog.Logger
}

// Reconciler keeps an HPA for every PodAutoscaler of class HPA.
type Reconciler struct {
	opts Options
	log  *slog.Logger
}

// New returns a reconciler; SetupWithManager connects it to the cluster.
func New(opts Options) *Reconciler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{opts: opts, log: opts.Logger.With("component", "hpa-autoscaler")}
}

// SetupWithManager reconciles PodAutoscalers of class HPA, again when their HPA or their
// Deployment changes.
func (r *Reconciler) SetupWithManager(_ context.Context, mgr manager.Manager) error {
	isHPA := predicate.NewPredicateFuncs(func(o client.Object) bool {
		pa, ok := o.(*pav1alpha1.PodAutoscaler)
		return ok && pa.Class() == autoscaling.HPA
	})
	// A Deployment's PodAutoscaler has the Deployment's revision's name: the revision
	// reconciler names both after the revision.
	byRevision := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []ctrl.Request {
		for _, ref := range o.GetOwnerReferences() {
			if ref.Kind == "Revision" {
				return []ctrl.Request{{NamespacedName: client.ObjectKey{Namespace: o.GetNamespace(), Name: ref.Name}}}
			}
		}
		return nil
	})
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("hpa").
		For(&pav1alpha1.PodAutoscaler{}, builder.WithPredicates(isHPA)).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		Watches(&appsv1.Deployment{}, byRevision).
		Complete(r); err != nil {
		return fmt.Errorf("hpa autoscaler: %w", err)
	}
	return nil
}

// Reconcile makes pa's HPA match pa and reports its scale in pa's status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ctx = kmeta.WithConfig(ctx, r.opts.Config)
	pa := &pav1alpha1.PodAutoscaler{}
	err := kmeta.Converge(ctx, r.opts.Client, req.NamespacedName, pa,
		func(pa *pav1alpha1.PodAutoscaler) *pav1alpha1.PodAutoscalerStatus { return &pa.Status },
		r.reconcile, nil)
	return ctrl.Result{}, err
}

func (r *Reconciler) reconcile(ctx context.Context, pa *pav1alpha1.PodAutoscaler) error {
	if pa.Class() != autoscaling.HPA {
		return nil
	}
	want, err := MakeHPA(pa, config.FromContextOrDefaults(ctx).Autoscaler)
	if err != nil {
		// Written around the webhook: nothing to retry until pa changes.
		r.log.Warn("PodAutoscaler of class HPA", "pa", client.ObjectKeyFromObject(pa), "err", err)
		return nil
	}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	if _, err := kmeta.ReconcileChild(ctx, r.opts.Client, pa, want, hpa,
		func(cur, want *autoscalingv2.HorizontalPodAutoscaler) bool {
			return specMatches(cur.Spec, want.Spec) &&
				equality.Semantic.DeepEqual(cur.Labels, want.Labels) &&
				equality.Semantic.DeepEqual(cur.Annotations, want.Annotations)
		},
		func(cur, want *autoscalingv2.HorizontalPodAutoscaler) {
			// The behavior is the API server's defaults; MakeHPA leaves it to them.
			behavior := cur.Spec.Behavior
			cur.Spec, cur.Labels, cur.Annotations = want.Spec, want.Labels, want.Annotations
			cur.Spec.Behavior = behavior
		}); err != nil {
		return err
	}
	var ready int32
	deploy := &appsv1.Deployment{}
	switch err := r.opts.Client.Get(ctx, client.ObjectKey{Namespace: pa.Namespace, Name: pa.Spec.ScaleTargetRef.Name}, deploy); {
	case err == nil:
		ready = deploy.Status.ReadyReplicas
	case !apierrors.IsNotFound(err):
		return err
	}
	applyStatus(&pa.Status, hpa, ready, time.Now())
	pa.Status.ObservedGeneration = pa.Generation
	return nil
}
