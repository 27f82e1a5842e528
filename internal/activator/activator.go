// Package activator holds the requests for revisions that cannot take them yet: revisions at
// zero, or whose pods are all busy. It keeps one bounded queue per revision, asks for a pod at
// once when a revision has none (ScaleFromZero), learns of ready pods by watching the
// revisions' EndpointSlices, and sends each request to a pod chosen by the revision's
// containerConcurrency, as Knative's activator does. In standalone mode the gateway calls it
// in-process; it reads everything through the controller-runtime cache, so it runs the same
// against any cluster.
package activator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	appsv1 "k8s.io/api/apps/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/gantry-run/gantry/internal/lifecycle"
	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/tracing"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// DefaultQueueDepth bounds the requests one revision may have waiting, as Knative's 10 000.
const DefaultQueueDepth = 10000

// scaleInterval is the least time between two requests for a pod for one revision.
const scaleInterval = time.Second

// Scaler brings a revision at zero up. The autoscaler owns this decision; until it exists the
// activator's deploymentScaler raises the revision's Deployment to one replica.
type Scaler interface {
	ScaleFromZero(ctx context.Context, namespace, revision string) error
}

// Reporter takes the activator's measure of the requests it held or sent for a revision
// over the last second; the autoscaler counts them while the activator is in the path.
type Reporter interface {
	Report(namespace, name string, now time.Time, concurrency, rps float64)
}

// reportInterval is how often the activator reports to the autoscaler, as Knative's.
const reportInterval = time.Second

// Options configure an Activator.
type Options struct {
	// Client reads Revisions, EndpointSlices and Deployments (a cache-backed client).
	Client client.Client
	// Scaler is asked for a pod when a request arrives for a revision with none; nil means
	// scaling the revision's Deployment to one replica.
	Scaler Scaler
	// Reporter receives, every second, the load of each revision whose PodAutoscaler puts
	// the activator in its path (mode Proxy); nil reports nothing.
	Reporter Reporter
	// Registerer receives the request metrics (revision_request_count and
	// revision_request_latencies); nil registers them nowhere.
	Registerer prometheus.Registerer
	// QueueDepth bounds the waiting requests per revision (default DefaultQueueDepth).
	QueueDepth int64
	Logger     *slog.Logger
	// Tracer records the activator's span and a cold start's wait for a pod, and sends the
	// trace context on to the queue-proxy; nil traces nothing.
	Tracer *tracing.Tracer
	// DialPod connects to a pod's address; nil dials TCP. In standalone it is the node's
	// DialPod, which the gateway's fast path uses too.
	DialPod func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Activator sends requests to revisions' pods, holding them while a revision has none free.
type Activator struct {
	opts    Options
	log     *slog.Logger
	proxy   *httputil.ReverseProxy
	probes  *http.Client
	metrics *requestMetrics

	mu   sync.Mutex
	revs map[types.NamespacedName]*revisionState
}

// revisionState is what the activator knows of one revision.
type revisionState struct {
	// metrics are the revision's request metrics (nil without a Registerer).
	metrics *revisionMetrics

	th      *throttler
	timeout time.Duration
	h2c     bool

	scaleMu   sync.Mutex
	lastScale time.Time

	// serve is true while the revision's PodAutoscaler has the pods take its requests first
	// (mode Serve): the activator then only picks a pod, and the queue-proxies count the
	// requests as their own. Otherwise (mode Proxy, or no PodAutoscaler) the activator is in
	// the path: it marks the requests as proxied and reports their load itself.
	serve atomic.Bool
	load  load

	// The probes of pods not shown ready yet (probe.go): shownReady are the addresses the
	// EndpointSlices have shown ready, probed those not shown ready yet that answered a
	// probe ready, probing the probes running.
	probeMu    sync.Mutex
	shownReady map[string]bool
	probed     map[string]bool
	probing    map[string]*probeRun
}

// New returns an activator; SetupWithManager connects it to the cluster.
func New(opts Options) *Activator {
	if opts.QueueDepth <= 0 {
		opts.QueueDepth = DefaultQueueDepth
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Scaler == nil {
		opts.Scaler = deploymentScaler{opts.Client}
	}
	a := &Activator{opts: opts, log: opts.Logger.With("component", "activator"), revs: map[types.NamespacedName]*revisionState{}}
	if opts.Registerer != nil {
		a.metrics = newRequestMetrics()
	}
	a.proxy = newProxy(opts.DialPod)
	a.probes = newProbeClient(opts.DialPod)
	return a
}

// SetupWithManager watches EndpointSlices (ready pods) and Revisions (deletions) through the
// manager's cache.
func (a *Activator) SetupWithManager(ctx context.Context, mgr manager.Manager) error {
	if a.opts.Registerer != nil {
		if err := a.metrics.register(a.opts.Registerer); err != nil {
			return fmt.Errorf("activator: registering its metrics: %w", err)
		}
	}
	slices, err := mgr.GetCache().GetInformer(ctx, &discoveryv1.EndpointSlice{})
	if err != nil {
		return fmt.Errorf("activator: watching EndpointSlices: %w", err)
	}
	onSlice := func(obj any) {
		if s, ok := obj.(*discoveryv1.EndpointSlice); ok {
			a.refresh(context.Background(), s.Namespace, s.Labels[servingv1.RevisionLabelKey])
		}
	}
	if _, err := slices.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    onSlice,
		UpdateFunc: func(_, o any) { onSlice(o) },
		DeleteFunc: func(o any) {
			if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			onSlice(o)
		},
	}); err != nil {
		return err
	}
	revs, err := mgr.GetCache().GetInformer(ctx, &servingv1.Revision{})
	if err != nil {
		return fmt.Errorf("activator: watching Revisions: %w", err)
	}
	pas, err := mgr.GetCache().GetInformer(ctx, &pav1alpha1.PodAutoscaler{})
	if err != nil {
		return fmt.Errorf("activator: watching PodAutoscalers: %w", err)
	}
	onPA := func(obj any, gone bool) {
		if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if pa, ok := obj.(*pav1alpha1.PodAutoscaler); ok {
			a.setMode(types.NamespacedName{Namespace: pa.Namespace, Name: pa.Name}, !gone && pa.Status.Mode == pav1alpha1.ModeServe)
		}
	}
	if _, err := pas.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { onPA(o, false) },
		UpdateFunc: func(_, o any) { onPA(o, false) },
		DeleteFunc: func(o any) { onPA(o, true) },
	}); err != nil {
		return err
	}
	if a.opts.Reporter != nil {
		if err := mgr.Add(lifecycle.OnEveryServer(a.report)); err != nil {
			return err
		}
	}
	_, err = revs.AddEventHandler(toolscache.ResourceEventHandlerFuncs{DeleteFunc: func(o any) {
		if d, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
			o = d.Obj
		}
		if r, ok := o.(*servingv1.Revision); ok {
			key := types.NamespacedName{Namespace: r.Namespace, Name: r.Name}
			a.mu.Lock()
			if st := a.revs[key]; st != nil {
				st.stopProbes()
			}
			delete(a.revs, key)
			a.mu.Unlock()
			a.metrics.forget(r.Namespace, r.Name)
		}
	}})
	return err
}

// DashboardCollectors are the activator's request metrics, which the dashboard samples every
// two seconds, for a registry of the dashboard's own. Nil without a Registerer.
func (a *Activator) DashboardCollectors() []prometheus.Collector {
	if a.metrics == nil {
		return nil
	}
	return []prometheus.Collector{a.metrics.count, a.metrics.latency}
}

// ServeRevision sends r to a pod of the revision namespace/name, waiting (bounded by the
// revision's timeout) while it has none free. A full queue answers 503, a wait past the
// timeout 504.
func (a *Activator) ServeRevision(w http.ResponseWriter, r *http.Request, namespace, name string) {
	st, err := a.state(r.Context(), namespace, name)
	if err != nil {
		status, msg := stateError(namespace, name, err)
		http.Error(w, msg, status)
		return
	}
	// The response's status and time are for the metrics and the trace: without either, the
	// request goes through as it came.
	if a.metrics != nil || a.opts.Tracer != nil {
		began := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		w = sw
		var span tracing.Span
		if a.opts.Tracer != nil {
			r, span = a.opts.Tracer.StartServer(r, "activator", attribute.String("gantry.revision", namespace+"/"+name))
		}
		defer func() {
			st.metrics.observe(sw.status(), time.Since(began))
			span.End(sw.status())
		}()
	}
	proxied := !st.serve.Load()
	if proxied {
		st.load.begin(time.Now())
		defer func() { st.load.end(time.Now()) }()
	}
	p, release, status, msg := a.waitForPod(r.Context(), st, namespace, name)
	if p == nil {
		if status != 0 {
			http.Error(w, msg, status)
		}
		return
	}
	defer release()
	a.opts.Tracer.Inject(r.Context(), r.Header)
	a.proxy.ServeHTTP(w, r.WithContext(withTarget(r.Context(), target{addr: p.addr, h2c: st.h2c, proxied: proxied})))
}

// stateError is the status and message of a request for a revision whose state could not be
// had: 404 when it does not exist, else 503.
func stateError(namespace, name string, err error) (int, string) {
	status := http.StatusServiceUnavailable
	if apierrors.IsNotFound(err) {
		status = http.StatusNotFound
	}
	return status, fmt.Sprintf("revision %s/%s: %v", namespace, name, err)
}

// waitForPod waits, within the revision's timeout, for a slot on one of its pods, asking for
// a pod when it has none, and returns the pod with the func that gives the slot back. When no
// slot came it returns the status and message to answer: 503 when too many requests wait
// already, 504 past the timeout, status 0 when ctx ended first (the client left).
func (a *Activator) waitForPod(ctx context.Context, st *revisionState, namespace, name string) (*pod, func(), int, string) {
	wait, cancel := context.WithTimeout(ctx, st.timeout)
	defer cancel()
	// The wait for a pod is a span of its own: for a revision at zero it is the cold start,
	// from the request for a pod to the pod ready.
	var waitSpan tracing.Span
	if a.opts.Tracer != nil {
		wait, waitSpan = a.opts.Tracer.StartSpan(wait, "activator.wait_for_pod", attribute.Bool("gantry.cold_start", st.th.podCount() == 0))
	}
	p, release, err := st.th.acquire(wait, func() { a.scaleFromZero(namespace, name, st) })
	waitSpan.EndErr(err)
	switch {
	case errors.Is(err, ErrQueueFull):
		return nil, nil, http.StatusServiceUnavailable, fmt.Sprintf("revision %s/%s: %v", namespace, name, err)
	case errors.Is(err, context.DeadlineExceeded):
		return nil, nil, http.StatusGatewayTimeout, fmt.Sprintf("revision %s/%s: no pod could take the request within %s", namespace, name, st.timeout)
	case err != nil:
		return nil, nil, 0, ""
	}
	return p, release, 0, ""
}

// ServeHTTP serves a request that names its revision by the headers Knative's ingresses set,
// Knative-Serving-Namespace and Knative-Serving-Revision, as Knative's activator does: the
// requests a Gateway API implementation sends to a revision's Service while that Service
// points at the activator. A request without both headers is refused with 400.
func (a *Activator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	namespace, name := r.Header.Get(netv1alpha1.NamespaceHeaderName), r.Header.Get(netv1alpha1.RevisionHeaderName)
	if namespace == "" || name == "" {
		http.Error(w, fmt.Sprintf("activator: the request names no revision: it needs the headers %s and %s",
			netv1alpha1.NamespaceHeaderName, netv1alpha1.RevisionHeaderName), http.StatusBadRequest)
		return
	}
	a.ServeRevision(w, r, namespace, name)
}

// state returns the revision's state, making it from the Revision and its EndpointSlices the
// first time.
func (a *Activator) state(ctx context.Context, namespace, name string) (*revisionState, error) {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	a.mu.Lock()
	st, ok := a.revs[key]
	a.mu.Unlock()
	if ok {
		return st, nil
	}
	rev := &servingv1.Revision{}
	if err := a.opts.Client.Get(ctx, key, rev); err != nil {
		return nil, err
	}
	st = &revisionState{
		metrics: a.metrics.revision(namespace, rev.Labels[servingv1.ServiceLabelKey],
			rev.Labels[servingv1.ConfigurationLabelKey], name),
		th:      newThrottler(ptr.Deref(rev.Spec.ContainerConcurrency, 0), a.opts.QueueDepth),
		timeout: time.Duration(ptr.Deref(rev.Spec.TimeoutSeconds, 300)) * time.Second,
		h2c:     servesH2C(rev),
	}
	pa := &pav1alpha1.PodAutoscaler{}
	if err := a.opts.Client.Get(ctx, key, pa); err == nil {
		st.serve.Store(pa.Status.Mode == pav1alpha1.ModeServe)
	}
	a.mu.Lock()
	if cur, ok := a.revs[key]; ok {
		st = cur
	} else {
		a.revs[key] = st
	}
	a.mu.Unlock()
	a.refresh(ctx, namespace, name)
	return st, nil
}

// setMode records who takes the revision's requests first, for a revision the activator
// holds state for.
func (a *Activator) setMode(key types.NamespacedName, serve bool) {
	a.mu.Lock()
	st, ok := a.revs[key]
	a.mu.Unlock()
	if ok {
		st.serve.Store(serve)
	}
}

// report gives the Reporter, every reportInterval, the load of each revision the activator
// is in the path of, until ctx ends.
func (a *Activator) report(ctx context.Context) error {
	t := time.NewTicker(reportInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			a.mu.Lock()
			states := make(map[types.NamespacedName]*revisionState, len(a.revs))
			for k, st := range a.revs {
				states[k] = st
			}
			a.mu.Unlock()
			for k, st := range states {
				c, rps, active := st.load.take(now)
				if active && !st.serve.Load() {
					a.opts.Reporter.Report(k.Namespace, k.Name, now, c, rps)
				}
			}
		}
	}
}

// servesH2C reports whether the revision's serving port speaks HTTP/2 without TLS.
func servesH2C(rev *servingv1.Revision) bool {
	for _, c := range rev.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == "h2c" {
				return true
			}
		}
	}
	return false
}

// refresh sets the ready pods of a revision the activator holds state for from its
// EndpointSlices.
func (a *Activator) refresh(ctx context.Context, namespace, name string) {
	if name == "" {
		return
	}
	a.mu.Lock()
	st, ok := a.revs[types.NamespacedName{Namespace: namespace, Name: name}]
	a.mu.Unlock()
	if !ok {
		return
	}
	list := &discoveryv1.EndpointSliceList{}
	if err := a.opts.Client.List(ctx, list, client.InNamespace(namespace), client.MatchingLabels{servingv1.RevisionLabelKey: name}); err != nil {
		a.log.Warn("listing endpoints", "revision", namespace+"/"+name, "err", err)
		return
	}
	ready, pending := endpointAddrs(list.Items)
	st.th.setPods(a.usable(namespace, name, st, ready, pending))
}

// endpointAddrs are the queue-proxy addresses of the endpoints of slices, once each: the
// slice's port named "http" (the revision Service's port to the queue-proxy), else the
// queue-proxy's port. Ready are those shown ready, pending those not ready yet and not
// terminating (new pods). The slices of the revision's public Service (cluster mode with the
// Gateway API ingress) are left out: they point at the pods or at the activator itself.
func endpointAddrs(slices []discoveryv1.EndpointSlice) (ready, pending []string) {
	seen := map[string]bool{}
	for _, s := range slices {
		if s.Labels[netv1alpha1.ServiceTypeLabelKey] == netv1alpha1.ServiceTypePublic {
			continue
		}
		port := strconv.Itoa(contract.HTTPPort)
		for _, p := range s.Ports {
			if ptr.Deref(p.Name, "") == "http" && p.Port != nil {
				port = strconv.Itoa(int(*p.Port))
			}
		}
		for _, e := range s.Endpoints {
			isReady := e.Conditions.Ready == nil || *e.Conditions.Ready
			if !isReady && ptr.Deref(e.Conditions.Terminating, false) {
				continue
			}
			for _, ip := range e.Addresses {
				addr := net.JoinHostPort(ip, port)
				if seen[addr] {
					continue
				}
				seen[addr] = true
				if isReady {
					ready = append(ready, addr)
				} else {
					pending = append(pending, addr)
				}
			}
		}
	}
	return ready, pending
}

// scaleFromZero asks for a pod, at most once per scaleInterval per revision, without holding
// up the request.
func (a *Activator) scaleFromZero(namespace, name string, st *revisionState) {
	st.scaleMu.Lock()
	if time.Since(st.lastScale) < scaleInterval {
		st.scaleMu.Unlock()
		return
	}
	st.lastScale = time.Now()
	st.scaleMu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.opts.Scaler.ScaleFromZero(ctx, namespace, name); err != nil {
			a.log.Warn("scaling from zero", "revision", namespace+"/"+name, "err", err)
		}
	}()
}

// deploymentScaler raises a revision's Deployment from zero to one replica.
type deploymentScaler struct{ c client.Client }

func (s deploymentScaler) ScaleFromZero(ctx context.Context, namespace, name string) error {
	list := &appsv1.DeploymentList{}
	if err := s.c.List(ctx, list, client.InNamespace(namespace), client.MatchingLabels{servingv1.RevisionLabelKey: name}); err != nil {
		return err
	}
	for i := range list.Items {
		d := &list.Items[i]
		if ptr.Deref(d.Spec.Replicas, 1) > 0 {
			continue
		}
		patch := client.MergeFrom(d.DeepCopy())
		d.Spec.Replicas = ptr.To[int32](1)
		if err := s.c.Patch(ctx, d, patch); err != nil {
			return fmt.Errorf("scaling deployment %s to 1: %w", d.Name, err)
		}
	}
	return nil
}
