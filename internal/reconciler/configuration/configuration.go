// Package configuration reconciles a Configuration: it stamps one immutable Revision per
// template generation and tracks the latest created and latest ready ones.
package configuration

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/reconciler/configuration/resources"
	"github.com/gantry-run/gantry/internal/reconciler/kmeta"
	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// Reconciler converges Configurations.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	// Config gives the configuration in force; nil means the shipped defaults. The webhook has
	// already applied config-defaults to the template, so the Revision is stamped as it is.
	Config config.Source
}

// SetupWithManager registers the reconciler.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("configuration").
		For(&servingv1.Configuration{}).
		Owns(&servingv1.Revision{}).
		Complete(r)
}

// Reconcile makes sure the Revision of the current generation exists and updates the status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ctx = kmeta.WithConfig(ctx, r.Config)
	return ctrl.Result{}, kmeta.Converge(ctx, r.Client, req.NamespacedName, &servingv1.Configuration{},
		func(c *servingv1.Configuration) *servingv1.ConfigurationStatus { return &c.Status },
		r.reconcile, nil)
}

func (r *Reconciler) reconcile(ctx context.Context, cfg *servingv1.Configuration) error {
	cfg.Status.InitializeConditions()
	cfg.Status.ObservedGeneration = cfg.Generation
	latest, err := r.latestCreated(ctx, cfg)
	if err != nil {
		return err
	}
	return r.trackReadiness(ctx, cfg, latest)
}

// latestCreated returns the Revision of the Configuration's current generation, creating it
// when it does not exist.
func (r *Reconciler) latestCreated(ctx context.Context, cfg *servingv1.Configuration) (*servingv1.Revision, error) {
	want := resources.MakeRevision(cfg)
	rev := &servingv1.Revision{}
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), rev)
	switch {
	case apierrors.IsNotFound(err):
		err := r.Client.Create(ctx, want)
		if apierrors.IsAlreadyExists(err) {
			// The cache has not seen a Revision created a moment ago: not a failure to
			// report, only to retry once the cache has caught up.
			return nil, fmt.Errorf("creating revision %s/%s: %w", want.Namespace, want.Name, err)
		}
		if err != nil {
			cfg.Status.MarkRevisionCreationFailed(err.Error())
			r.Recorder.Eventf(cfg, nil, corev1.EventTypeWarning, "CreationFailed", "Create", "Failed to create Revision %q: %v", want.Name, err)
			return nil, fmt.Errorf("creating revision %s/%s: %w", want.Namespace, want.Name, err)
		}
		r.Recorder.Eventf(cfg, want, corev1.EventTypeNormal, "Created", "Create", "Created Revision %q", want.Name)
		rev = want
	case err != nil:
		return nil, fmt.Errorf("reading revision %s/%s: %w", want.Namespace, want.Name, err)
	case !metav1.IsControlledBy(rev, cfg):
		msg := fmt.Sprintf("revision %q already exists and is not owned by configuration %q", rev.Name, cfg.Name)
		cfg.Status.MarkRevisionCreationFailed(msg)
		return nil, errors.New(msg)
	}
	if cfg.Status.LatestCreatedRevisionName != rev.Name {
		cfg.Status.SetLatestCreatedRevisionName(rev.Name)
	}
	return rev, nil
}

// trackReadiness sets latestReadyRevisionName and the Ready condition from the latest
// created Revision; while it is not ready, the last ready one keeps serving.
func (r *Reconciler) trackReadiness(ctx context.Context, cfg *servingv1.Configuration, latest *servingv1.Revision) error {
	ready := latest.Status.GetCondition(servingv1.RevisionConditionReady)
	switch {
	case latest.IsReady():
		if cfg.Status.LatestReadyRevisionName != latest.Name {
			cfg.Status.SetLatestReadyRevisionName(latest.Name)
			r.Recorder.Eventf(cfg, latest, corev1.EventTypeNormal, "LatestReadyUpdate", "Reconcile", "LatestReadyRevisionName updated to %q", latest.Name)
		}
	case ready.IsFalse() && latest.Status.ObservedGeneration == latest.Generation:
		// The event tells of the failure once: when this reconcile is the one that records it.
		before := cfg.Status.GetCondition(servingv1.ConfigurationConditionReady).DeepCopy()
		cfg.Status.MarkLatestCreatedFailed(latest.Name, ready.GetMessage())
		if !equality.Semantic.DeepEqual(before, cfg.Status.GetCondition(servingv1.ConfigurationConditionReady)) {
			r.Recorder.Eventf(cfg, latest, corev1.EventTypeWarning, "LatestCreatedFailed", "Reconcile", "Latest created revision %q has failed: %s", latest.Name, ready.GetMessage())
		}
	}
	// A latest ready revision that was deleted no longer serves.
	if name := cfg.Status.LatestReadyRevisionName; name != "" && name != latest.Name {
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: cfg.Namespace, Name: name}, &servingv1.Revision{})
		switch {
		case apierrors.IsNotFound(err):
			cfg.Status.MarkLatestReadyDeleted()
		case err != nil:
			return fmt.Errorf("reading latest ready revision %s/%s: %w", cfg.Namespace, name, err)
		}
	}
	return nil
}
