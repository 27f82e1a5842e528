// Package route reconciles a Route: it resolves every traffic target to a ready Revision and
// publishes the result (status.traffic, the URLs) as the routing state the gateway serves, and
// labels the Revisions it routes to active and those it stopped routing to reserve, which the
// autoscaler reads as their reachability.
package route

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/gantry-run/gantry/internal/reconciler/kmeta"
	"github.com/gantry-run/gantry/internal/reconciler/route/resources"
	"github.com/gantry-run/gantry/pkg/apis"
	"github.com/gantry-run/gantry/pkg/apis/config"
	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// targetIndex indexes Routes by the Configurations and Revisions their traffic names.
const targetIndex = "spec.traffic.target"

// Reconciler converges Routes.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	// Config gives the configuration in force (config-network names the hosts); nil means
	// the shipped defaults.
	Config config.Source
	// Domain is the domain of every Route's host: <name>.<namespace>.<domain> under the
	// default domain-template.
	Domain string
	// Clock stamps the routing state changes; nil is the real clock.
	Clock clock.PassiveClock
}

// SetupWithManager registers the reconciler; a change of a Configuration or Revision wakes
// the Routes that name it.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &servingv1.Route{}, targetIndex, func(o client.Object) []string {
		var keys []string
		for _, t := range o.(*servingv1.Route).Spec.Traffic {
			if t.ConfigurationName != "" {
				keys = append(keys, "Configuration/"+t.ConfigurationName)
			}
			if t.RevisionName != "" {
				keys = append(keys, "Revision/"+t.RevisionName)
			}
		}
		return keys
	}); err != nil {
		return fmt.Errorf("indexing routes: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &servingv1.Revision{}, routesIndex, revisionRoutes); err != nil {
		return fmt.Errorf("indexing revisions: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("route").
		For(&servingv1.Route{}).
		Owns(&netv1alpha1.Ingress{}).
		Watches(&servingv1.Configuration{}, handler.EnqueueRequestsFromMapFunc(r.routesNaming("Configuration"))).
		Watches(&servingv1.Revision{}, handler.EnqueueRequestsFromMapFunc(r.routesNaming("Revision"))).
		Complete(r)
}

func (r *Reconciler) routesNaming(kind string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		routes := &servingv1.RouteList{}
		if err := r.Client.List(ctx, routes, client.InNamespace(o.GetNamespace()),
			client.MatchingFields{targetIndex: kind + "/" + o.GetName()}); err != nil {
			// A map function cannot retry; the cache it lists from does not fail once synced.
			ctrl.LoggerFrom(ctx).Error(err, "listing the routes that name a target", "kind", kind, "name", o.GetName())
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(routes.Items))
		for _, rt := range routes.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&rt)})
		}
		return reqs
	}
}

// Reconcile resolves the Route's targets, updates its status and labels the Revisions it
// routes to. A Route that is gone, or going, routes to none.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ctx = kmeta.WithConfig(ctx, r.Config)
	route := &servingv1.Route{}
	seen := false
	err := kmeta.Converge(ctx, r.Client, req.NamespacedName, route,
		func(rt *servingv1.Route) *servingv1.RouteStatus { return &rt.Status },
		func(ctx context.Context, rt *servingv1.Route) error {
			seen = true
			return errors.Join(r.reconcile(ctx, rt), r.labelRevisions(ctx, rt))
		},
		func(before *servingv1.RouteStatus) { r.eventOnChange(route, before) })
	if err == nil && !seen {
		err = r.unlabelRevisions(ctx, req.Namespace, req.Name, nil)
	}
	return ctrl.Result{}, err
}

// labelRevisions marks the Revisions the Route sends traffic to, or is about to, as routed by
// it, and those it marked before and no longer routes to as not: reserve once no Route does.
// The traffic is the status being written, and the spec; a Revision that does not exist yet is
// labelled when the Route next sees it.
func (r *Reconciler) labelRevisions(ctx context.Context, route *servingv1.Route) error {
	l := &lookup{ctx: ctx, c: r.Client, ns: route.Namespace}
	routed, err := resources.RoutedRevisions(route, l)
	if err != nil {
		return fmt.Errorf("route %s/%s: %w", route.Namespace, route.Name, err)
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(routed)) {
		rev, err := l.Revision(name)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("reading revision %s: %w", name, err))
			continue
		}
		errs = append(errs, r.markRouted(ctx, rev, route.Name, true))
	}
	errs = append(errs, r.unlabelRevisions(ctx, route.Namespace, route.Name, routed))
	return errors.Join(errs...)
}

// unlabelRevisions marks as no longer routed by the Route every Revision of the namespace
// whose routes it is among, but those named in keep.
func (r *Reconciler) unlabelRevisions(ctx context.Context, ns, route string, keep map[string]bool) error {
	// The index finds the revisions that name this route, so a reconcile costs what the route
	// routes, not what the namespace holds.
	revs := &servingv1.RevisionList{}
	if err := r.Client.List(ctx, revs, client.InNamespace(ns), client.MatchingFields{routesIndex: route}); err != nil {
		return fmt.Errorf("listing the revisions route %s/%s routed to: %w", ns, route, err)
	}
	var errs []error
	for i := range revs.Items {
		rev := &revs.Items[i]
		if !keep[rev.Name] && slices.Contains(resources.RoutesOf(rev), route) {
			errs = append(errs, r.markRouted(ctx, rev, route, false))
		}
	}
	return errors.Join(errs...)
}

// routesIndex indexes Revisions by the routes their routes annotation names.
const routesIndex = "metadata.annotations.routes"

func revisionRoutes(o client.Object) []string {
	rev, ok := o.(*servingv1.Revision)
	if !ok {
		return nil
	}
	return resources.RoutesOf(rev)
}

// markRouted records on rev whether route routes to it, by a patch of its metadata that fails
// if rev changed meanwhile (another Route may be recording itself), to be retried.
func (r *Reconciler) markRouted(ctx context.Context, rev *servingv1.Revision, route string, routed bool) error {
	c := r.Clock
	if c == nil {
		c = clock.RealClock{}
	}
	orig := rev.DeepCopy()
	if !resources.MarkRouted(rev, route, routed, c.Now()) {
		return nil
	}
	if err := r.Client.Patch(ctx, rev, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("labelling revision %s/%s: %w", rev.Namespace, rev.Name, err)
	}
	return nil
}

// reconcile resolves the Route's targets into its status. A target that cannot be read leaves
// the traffic as it was and is retried.
func (r *Reconciler) reconcile(ctx context.Context, route *servingv1.Route) error {
	route.Status.InitializeConditions()
	route.Status.ObservedGeneration = route.Generation
	hosts := resources.Hosts{Network: config.FromContextOrDefaults(ctx).Network, Domain: r.Domain}
	url, err := hosts.URL(route)
	if err != nil {
		r.Recorder.Eventf(route, nil, corev1.EventTypeWarning, "InternalError", "Reconcile", "%v", err)
		return fmt.Errorf("route %s/%s: %w", route.Namespace, route.Name, err)
	}
	route.Status.Address = &apis.Addressable{URL: resources.ClusterURL(route)}
	if resources.IsClusterLocal(route) {
		url = resources.ClusterURL(route)
	}
	route.Status.URL = url

	traffic, unresolved, err := resources.Resolve(route, hosts, &lookup{ctx: ctx, c: r.Client, ns: route.Namespace})
	switch {
	case err != nil:
		r.Recorder.Eventf(route, nil, corev1.EventTypeWarning, "InternalError", "Reconcile", "%v", err)
		return fmt.Errorf("route %s/%s: %w", route.Namespace, route.Name, err)
	case unresolved == nil:
		route.Status.Traffic = traffic
		route.Status.MarkTrafficAssigned()
		return r.reconcileIngress(ctx, route, hosts)
	case unresolved.Missing:
		route.Status.MarkMissingTrafficTarget(unresolved.Kind, unresolved.Name)
	case unresolved.Kind == "Configuration" && unresolved.Failed:
		route.Status.MarkConfigurationFailed(unresolved.Name)
	case unresolved.Kind == "Configuration":
		route.Status.MarkConfigurationNotReady(unresolved.Name)
	case unresolved.Failed:
		route.Status.MarkRevisionFailed(unresolved.Name)
	default:
		route.Status.MarkRevisionNotReady(unresolved.Name)
	}
	return nil
}

// reconcileIngress programs the data plane with the Route's resolved traffic through its
// Ingress, and reports the Ingress's readiness, which the gateway writes, as IngressReady.
func (r *Reconciler) reconcileIngress(ctx context.Context, route *servingv1.Route, hosts resources.Hosts) error {
	want, err := resources.MakeIngress(route, route.Status.Traffic, hosts, config.FromContextOrDefaults(ctx).Features.TagHeaderBasedRouting)
	if err != nil {
		r.Recorder.Eventf(route, nil, corev1.EventTypeWarning, "InternalError", "Reconcile", "%v", err)
		return fmt.Errorf("route %s/%s: %w", route.Namespace, route.Name, err)
	}
	cur := &netv1alpha1.Ingress{}
	created, err := kmeta.ReconcileChild(ctx, r.Client, route, want, cur,
		func(cur, want *netv1alpha1.Ingress) bool {
			return equality.Semantic.DeepEqual(want.Spec, cur.Spec) && equality.Semantic.DeepEqual(want.Labels, cur.Labels)
		},
		func(cur, want *netv1alpha1.Ingress) {
			cur.Spec, cur.Labels, cur.Annotations = want.Spec, want.Labels, kmeta.UnionMaps(cur.Annotations, want.Annotations)
		})
	switch {
	case errors.Is(err, kmeta.ErrNotOwned):
		route.Status.MarkIngressFailed("NotOwned", fmt.Sprintf("There is an existing Ingress %q that we do not own.", want.Name))
		return err
	case err != nil:
		return err
	case created:
		r.Recorder.Eventf(route, want, corev1.EventTypeNormal, "Created", "Create", "Created Ingress %q", want.Name)
		route.Status.MarkIngressNotReady(servingv1.ReasonIngressNotConfigured, "Ingress has not yet been reconciled.")
		return nil
	}
	switch ready := cur.Status.GetCondition(netv1alpha1.IngressConditionReady); {
	case cur.IsReady():
		route.Status.MarkIngressReady()
	case ready.IsFalse():
		route.Status.MarkIngressFailed(ready.Reason, ready.Message)
	default:
		route.Status.MarkIngressNotReady(servingv1.ReasonIngressNotConfigured, "Ingress has not yet been reconciled.")
	}
	return nil
}

// eventOnChange tells of a target that went missing and of traffic that moved.
func (r *Reconciler) eventOnChange(route *servingv1.Route, before *servingv1.RouteStatus) {
	was, now := before.GetCondition(servingv1.RouteConditionAllTrafficAssigned), route.Status.GetCondition(servingv1.RouteConditionAllTrafficAssigned)
	if now.IsFalse() && (was == nil || !was.IsFalse() || was.Message != now.Message) {
		r.Recorder.Eventf(route, nil, corev1.EventTypeWarning, now.Reason, "Reconcile", "%s", now.Message)
	}
	if now.IsTrue() && !equality.Semantic.DeepEqual(before.Traffic, route.Status.Traffic) {
		r.Recorder.Eventf(route, nil, corev1.EventTypeNormal, "TrafficAssigned", "Reconcile", "Traffic now goes to %s", describe(route.Status.Traffic))
	}
}

func describe(traffic []servingv1.TrafficTarget) string {
	s := ""
	for i, t := range traffic {
		if i > 0 {
			s += ", "
		}
		pct := int64(0)
		if t.Percent != nil {
			pct = *t.Percent
		}
		s += fmt.Sprintf("%s %d%%", t.RevisionName, pct)
		if t.Tag != "" {
			s += " (tag " + t.Tag + ")"
		}
	}
	return s
}

// lookup reads targets from the informer cache; a missing one is the client's NotFound.
type lookup struct {
	ctx context.Context //nolint:containedctx // lives for one Reconcile call
	c   client.Client
	ns  string
}

func (l *lookup) Configuration(name string) (*servingv1.Configuration, error) {
	cfg := &servingv1.Configuration{}
	if err := l.c.Get(l.ctx, client.ObjectKey{Namespace: l.ns, Name: name}, cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (l *lookup) Revision(name string) (*servingv1.Revision, error) {
	rev := &servingv1.Revision{}
	if err := l.c.Get(l.ctx, client.ObjectKey{Namespace: l.ns, Name: name}, rev); err != nil {
		return nil, err
	}
	return rev, nil
}
