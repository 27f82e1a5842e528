package kpa

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/gantry-run/gantry/internal/autoscaler/metrics"
	"github.com/gantry-run/gantry/internal/autoscaler/scaling"
	"github.com/gantry-run/gantry/internal/queue"
	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// Defaults of Options.
const (
	DefaultScrapeInterval = time.Second
	DefaultTickInterval   = 2 * time.Second
	// workers bounds the revisions scraped or decided at once.
	workers = 16
)

// errNoTarget is a scale target that does not exist (yet).
var errNoTarget = errors.New("scale target not found")

// Options configure an Autoscaler.
type Options struct {
	// Client reads PodAutoscalers and pods through the manager's cache and writes scales and
	// statuses.
	Client client.Client
	// Config is the configuration in force (config-autoscaler), read at every decision.
	Config config.Source
	// Fetch asks a pod's queue-proxy for its stats; nil is HTTP to the pod's stats port.
	Fetch metrics.FetchFunc
	// Recorder receives an event per scale change; nil records none.
	Recorder events.EventRecorder
	// ScrapeInterval and TickInterval default to DefaultScrapeInterval and
	// DefaultTickInterval.
	ScrapeInterval, TickInterval time.Duration
	// Registerer receives the autoscaler's gauges (Knative's autoscaler_* metrics); nil
	// registers them nowhere.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Autoscaler runs the KPA for every PodAutoscaler of its class.
type Autoscaler struct {
	opts      Options
	log       *slog.Logger
	collector *metrics.Collector
	scraper   *metrics.Scraper
	gauges    *gauges

	mu   sync.Mutex
	revs map[types.NamespacedName]*revision
}

// revision is what the autoscaler keeps for one PodAutoscaler.
type revision struct {
	// uid is the PodAutoscaler's: a new one under the same name starts afresh.
	uid types.UID
	// mu serialises decisions: the tick and the activator's poke.
	mu      sync.Mutex
	decider *scaling.Decider
	// lastPoke is the last immediate decision the activator asked for.
	lastPoke time.Time
	// quiet says the last decision found the revision at zero with nothing to look at: no
	// pod and no load in its windows. quietTicks counts the ticks skipped since.
	quiet      bool
	quietTicks int
}

// quietEvery: a quiet revision is decided at every quietEvery-th tick only. Nothing but a
// request (the activator's poke and reports), a change of its PodAutoscaler or of the
// configuration can move it, and each of those wakes it at once; the rare tick catches the
// rest (a pod someone started by hand).
const quietEvery = 10

// New returns an autoscaler; SetupWithManager connects it to the cluster.
func New(opts Options) *Autoscaler {
	if opts.ScrapeInterval <= 0 {
		opts.ScrapeInterval = DefaultScrapeInterval
	}
	if opts.TickInterval <= 0 {
		opts.TickInterval = DefaultTickInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Fetch == nil {
		opts.Fetch = httpFetch()
	}
	return &Autoscaler{
		opts:      opts,
		log:       opts.Logger.With("component", "autoscaler"),
		collector: metrics.NewCollector(),
		scraper:   &metrics.Scraper{Fetch: opts.Fetch},
		gauges:    gaugesFor(opts.Registerer),
		revs:      map[types.NamespacedName]*revision{},
	}
}

// httpFetch scrapes http://<ip>:<stats port>/metrics, keeping connections to the pods.
func httpFetch() metrics.FetchFunc {
	c := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}}
	return func(ctx context.Context, ip string) (queue.Stat, error) {
		url := "http://" + net.JoinHostPort(ip, strconv.Itoa(contract.MetricsPort)) + "/metrics"
		return queue.ScrapeStats(ctx, c, url)
	}
}

// SetupWithManager reconciles PodAutoscalers of class KPA and runs the scrape and decision
// loops with the manager.
func (a *Autoscaler) SetupWithManager(ctx context.Context, mgr manager.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Pod{}, podRevisionIndex, podRevision); err != nil {
		return fmt.Errorf("autoscaler: %w", err)
	}
	isKPA := predicate.NewPredicateFuncs(func(o client.Object) bool {
		pa, ok := o.(*pav1alpha1.PodAutoscaler)
		return ok && pa.Class() == autoscaling.KPA
	})
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("kpa").
		For(&pav1alpha1.PodAutoscaler{}, builder.WithPredicates(isKPA)).
		Complete(a); err != nil {
		return fmt.Errorf("autoscaler: %w", err)
	}
	if a.opts.Registerer != nil {
		if err := a.gauges.register(a.opts.Registerer); err != nil {
			return fmt.Errorf("autoscaler: registering its metrics: %w", err)
		}
	}
	return mgr.Add(manager.RunnableFunc(a.run))
}

// Reconcile keeps the autoscaler's state in step with the PodAutoscaler: it starts watching
// a new one, applies changed settings, and forgets a deleted one.
func (a *Autoscaler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pa := &pav1alpha1.PodAutoscaler{}
	err := a.opts.Client.Get(ctx, req.NamespacedName, pa)
	if apierrors.IsNotFound(err) || err == nil && (pa.DeletionTimestamp != nil || pa.Class() != autoscaling.KPA) {
		a.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if _, err := a.revision(ctx, pa); err != nil {
		return ctrl.Result{}, err
	}
	a.wake(req.NamespacedName)
	// A new PodAutoscaler is decided at once, so a revision created at its initial scale
	// reports it without waiting for the tick.
	if pa.Status.DesiredScale == nil {
		a.decide(ctx, req.NamespacedName)
	}
	return ctrl.Result{}, nil
}

// revision returns the state of pa's revision, making it the first time, with the settings of
// the configuration in force and pa's annotations.
func (a *Autoscaler) revision(ctx context.Context, pa *pav1alpha1.PodAutoscaler) (*revision, error) {
	key := client.ObjectKeyFromObject(pa)
	s := a.settings(pa, true)
	a.mu.Lock()
	defer a.mu.Unlock()
	if r, ok := a.revs[key]; ok {
		if r.uid == pa.UID {
			return r, nil
		}
		// A new PodAutoscaler under an old name (its revision was deleted and made again):
		// nothing of the old one's history applies.
		a.collector.Forget(key)
		a.gauges.forget(key)
	}
	ready, err := a.readyPods(ctx, key)
	if err != nil {
		return nil, err
	}
	r := &revision{uid: pa.UID, decider: scaling.NewDecider(s, int32(len(ready)), time.Now())}
	a.revs[key] = r
	a.collector.Watch(key, s.StableWindow, s.PanicWindow)
	return r, nil
}

func (a *Autoscaler) forget(key types.NamespacedName) {
	a.mu.Lock()
	delete(a.revs, key)
	a.mu.Unlock()
	a.collector.Forget(key)
	a.gauges.forget(key)
}

// settings are pa's decider settings; an annotation that does not parse is left out, and
// logged when warn is set (the webhook refuses them, so only objects written around it have
// them): once per change of the PodAutoscaler, not at every tick.
func (a *Autoscaler) settings(pa *pav1alpha1.PodAutoscaler, warn bool) scaling.Settings {
	s, err := scaling.NewSettings(a.opts.Config.Load().Autoscaler, pa.Annotations, pa.Spec.ContainerConcurrency)
	if err != nil && warn {
		a.log.Warn("autoscaling annotations", "podautoscaler", pa.Namespace+"/"+pa.Name, "err", err)
	}
	return s
}

// run scrapes every ScrapeInterval and decides every TickInterval until ctx ends.
func (a *Autoscaler) run(ctx context.Context) error {
	scrape := time.NewTicker(a.opts.ScrapeInterval)
	defer scrape.Stop()
	tick := time.NewTicker(a.opts.TickInterval)
	defer tick.Stop()
	lastConfig := a.opts.Config.Load()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-scrape.C:
			a.each(ctx, a.scrape)
		case <-tick.C:
			if cfg := a.opts.Config.Load(); cfg != lastConfig {
				lastConfig = cfg
				a.wakeAll()
			}
			a.each(ctx, a.tick)
		}
	}
}

// each runs fn for every revision, workers at a time, and waits for all.
func (a *Autoscaler) each(ctx context.Context, fn func(context.Context, types.NamespacedName)) {
	a.mu.Lock()
	keys := make([]types.NamespacedName, 0, len(a.revs))
	for k := range a.revs {
		keys = append(keys, k)
	}
	a.mu.Unlock()
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for _, k := range keys {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(ctx, k)
		}()
	}
	wg.Wait()
}

// tick decides for the revision, unless it is quiet and its turn has not come.
func (a *Autoscaler) tick(ctx context.Context, key types.NamespacedName) {
	a.tickWith(key, func() { a.decide(ctx, key) })
}

func (a *Autoscaler) tickWith(key types.NamespacedName, decide func()) {
	a.mu.Lock()
	r, ok := a.revs[key]
	a.mu.Unlock()
	if !ok {
		return
	}
	r.mu.Lock()
	skip := r.quiet && r.quietTicks < quietEvery-1
	if skip {
		r.quietTicks++
	}
	r.mu.Unlock()
	if !skip {
		decide()
	}
}

// wake makes the revision's next tick decide.
func (a *Autoscaler) wake(key types.NamespacedName) {
	a.mu.Lock()
	r, ok := a.revs[key]
	a.mu.Unlock()
	if ok {
		r.mu.Lock()
		r.quiet = false
		r.mu.Unlock()
	}
}

func (a *Autoscaler) wakeAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.revs {
		r.mu.Lock()
		r.quiet = false
		r.mu.Unlock()
	}
}

// scrape records the stats of a sample of the revision's ready pods.
func (a *Autoscaler) scrape(ctx context.Context, key types.NamespacedName) {
	a.mu.Lock()
	r, ok := a.revs[key]
	a.mu.Unlock()
	if !ok {
		return
	}
	pods, err := a.readyPods(ctx, key)
	if err != nil || len(pods) == 0 {
		return
	}
	r.mu.Lock()
	window := r.decider.Settings().StableWindow
	r.mu.Unlock()
	res, err := a.scraper.Scrape(ctx, pods, window)
	if err != nil {
		a.log.Debug("scraping", "revision", key.String(), "err", err)
		return
	}
	a.collector.Record(key, res.At, res.Stat)
}

// podRevisionIndex indexes pods by their revision's name (within their namespace), so that the
// pods of one revision are found without going over every pod of its namespace: the scrape
// looks every second for every revision's, most of which have none.
const podRevisionIndex = "kpa.gantry.dev/revision"

func podRevision(o client.Object) []string {
	if rev := o.GetLabels()[servingv1.RevisionLabelKey]; rev != "" {
		return []string{rev}
	}
	return nil
}

// readyPods are the revision's pods that are ready, with an address.
func (a *Autoscaler) readyPods(ctx context.Context, rev types.NamespacedName) ([]metrics.Pod, error) {
	list := &corev1.PodList{}
	if err := a.opts.Client.List(ctx, list, client.InNamespace(rev.Namespace),
		client.MatchingFields{podRevisionIndex: rev.Name}); err != nil {
		return nil, fmt.Errorf("listing the pods of %s: %w", rev, err)
	}
	var out []metrics.Pod
	for i := range list.Items {
		p := &list.Items[i]
		if p.DeletionTimestamp != nil || p.Status.PodIP == "" {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				out = append(out, metrics.Pod{IP: p.Status.PodIP, ReadySince: c.LastTransitionTime.Time})
			}
		}
	}
	return out, nil
}

// decide makes one decision for the revision and applies it: the Deployment's scale, then
// the PodAutoscaler's status.
func (a *Autoscaler) decide(ctx context.Context, key types.NamespacedName) {
	if err := a.decideErr(ctx, key); err != nil {
		a.log.Warn("deciding the scale", "revision", key.String(), "err", err)
	}
}

func (a *Autoscaler) decideErr(ctx context.Context, key types.NamespacedName) error {
	a.mu.Lock()
	r, ok := a.revs[key]
	a.mu.Unlock()
	if !ok {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	pa := &pav1alpha1.PodAutoscaler{}
	if err := a.opts.Client.Get(ctx, key, pa); err != nil {
		return client.IgnoreNotFound(err)
	}
	if pa.UID != r.uid {
		return nil // a new PodAutoscaler under this name; its reconcile starts it afresh
	}
	pods, err := a.readyPods(ctx, key)
	if err != nil {
		return err
	}
	now := time.Now()
	s := a.settings(pa, false) // the reconcile of the PodAutoscaler's change warned once
	if s != r.decider.Settings() {
		r.decider.Update(s)
		a.collector.Watch(key, s.StableWindow, s.PanicWindow)
	}
	stable, panicAvg, err := a.collector.Averages(key, s.Metric, now)
	in := scaling.Inputs{
		ReadyPods:      int32(len(pods)),
		Reachable:      pa.Spec.Reachability != pav1alpha1.ReachabilityUnreachable,
		HaveMetrics:    err == nil,
		Stable:         stable,
		Panic:          panicAvg,
		Initialized:    pa.Status.ScaleTargetInitialized(),
		ActivatorSince: pa.Status.ActivatorSince(),
	}
	res := r.decider.Decide(in, now)
	// What each decision saw and made, at debug level (--log-level debug): the first thing
	// to read when a revision keeps pods it should not.
	if a.log.Enabled(ctx, slog.LevelDebug) {
		a.log.Debug("decision", "revision", key.String(), "readyPods", in.ReadyPods, "haveMetrics", in.HaveMetrics,
			"stable", stable, "panic", panicAvg, "valid", res.Valid, "desired", res.DesiredScale,
			"activatorInPath", res.ActivatorInPath, "inactive", res.Inactive, "activatorSince", in.ActivatorSince)
	}
	r.quiet = in.ReadyPods == 0 && !in.HaveMetrics && (!res.Valid || res.DesiredScale == 0)
	r.quietTicks = 0
	a.gauges.record(pa, s, in, res)
	if res.Valid {
		if err := a.scale(ctx, pa, res.DesiredScale); errors.Is(err, errNoTarget) {
			return nil // the revision controller has not made the Deployment yet
		} else if err != nil {
			return err
		}
	}
	before := pa.DeepCopy()
	applyDecision(&pa.Status, res, in.ReadyPods, now)
	pa.Status.ObservedGeneration = pa.Generation
	if equality.Semantic.DeepEqual(before.Status, pa.Status) {
		return nil
	}
	return a.opts.Client.Status().Patch(ctx, pa, client.MergeFrom(before))
}

// scale sets the Deployment's replicas through its scale subresource when they differ. The
// Deployment is read from the cache, so a decision that changes nothing costs no request.
func (a *Autoscaler) scale(ctx context.Context, pa *pav1alpha1.PodAutoscaler, want int32) error {
	ref := pa.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || ref.Name == "" {
		return fmt.Errorf("scale target %s %q: only a Deployment can be scaled", ref.Kind, ref.Name)
	}
	deploy := &appsv1.Deployment{}
	if err := a.opts.Client.Get(ctx, types.NamespacedName{Namespace: pa.Namespace, Name: ref.Name}, deploy); apierrors.IsNotFound(err) {
		return errNoTarget
	} else if err != nil {
		return fmt.Errorf("reading deployment %s: %w", ref.Name, err)
	}
	from := ptr.Deref(deploy.Spec.Replicas, 1)
	if from == want {
		return nil
	}
	patch := client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, want))
	if err := a.opts.Client.SubResource("scale").Patch(ctx, deploy, patch, client.WithSubResourceBody(&autoscalingv1.Scale{})); err != nil {
		return fmt.Errorf("scaling deployment %s to %d: %w", ref.Name, want, err)
	}
	if a.opts.Recorder != nil {
		a.opts.Recorder.Eventf(pa, nil, corev1.EventTypeNormal, "Scaled", "Scale",
			"Scaled deployment %s from %d to %d", ref.Name, from, want)
	}
	return nil
}

// DashboardCollectors are the autoscaler's metrics the dashboard samples every two seconds
// (the stable concurrency), for a registry of the dashboard's own: gathering them there skips
// the other gauges of every revision. Nil without a Registerer.
func (a *Autoscaler) DashboardCollectors() []prometheus.Collector {
	if a.gauges == nil {
		return nil
	}
	return []prometheus.Collector{a.gauges.stable}
}

// ScaleFromZero is the activator's request for a revision it holds requests for and that has
// no pod: it counts one request in the revision's windows and decides at once, at most once
// a second per revision.
func (a *Autoscaler) ScaleFromZero(ctx context.Context, namespace, name string) error {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	a.mu.Lock()
	r, ok := a.revs[key]
	a.mu.Unlock()
	if !ok {
		return fmt.Errorf("revision %s has no PodAutoscaler of class %s", key, autoscaling.KPA)
	}
	now := time.Now()
	a.collector.RecordActivator(key, now, 1, 1)
	r.mu.Lock()
	r.quiet = false
	recent := now.Sub(r.lastPoke) < time.Second
	if !recent {
		r.lastPoke = now
	}
	r.mu.Unlock()
	if recent {
		return nil
	}
	return a.decideErr(ctx, key)
}

// Report takes the activator's measure of the requests it held or sent for a revision over
// the last second: their average concurrency and their rate.
func (a *Autoscaler) Report(namespace, name string, now time.Time, concurrency, rps float64) {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	a.collector.RecordActivator(key, now, concurrency, rps)
	a.wake(key)
}
