// Package gateway is Gantry's HTTP ingress: it serves the Ingresses the Route controller
// writes (hosts, traffic splits, tags, visibility), marks each Ingress ready once it serves
// it, and hands every request to the activator for the chosen revision. It reads Ingresses
// through the controller-runtime cache and nothing in-process only, so the same package runs
// inside gantry server or alone against any cluster.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/gantry-run/gantry/internal/connpass"
	"github.com/gantry-run/gantry/internal/forwarded"
	"github.com/gantry-run/gantry/internal/h1proxy"
	"github.com/gantry-run/gantry/internal/lifecycle"
	"github.com/gantry-run/gantry/internal/tracing"
	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
)

// Revisions serves a request with a revision: the activator.
type Revisions interface {
	ServeRevision(w http.ResponseWriter, r *http.Request, namespace, name string)
}

// Listener is an address the gateway serves on. FromPods marks the pods' side (the bridge
// address), where cluster-local hosts answer too.
type Listener struct {
	Addr     string
	FromPods bool
	// Pods, on a FromPods listener, tells which clients are pods: a request from any other
	// address (a node's host network, which reaches the bridge address too) is served as on
	// the host's side. Nil: every client of the listener is a pod.
	Pods func(netip.Addr) bool
	// Handler, when set, serves this listener's requests instead of the routing by host:
	// the activator's own port in cluster mode, where requests name their revision by
	// header (the revisions' public Services point there).
	Handler http.Handler
}

// Options configure a Gateway.
type Options struct {
	// Client reads and updates Ingresses (a cache-backed client).
	Client    client.Client
	Revisions Revisions
	Listeners []Listener
	Logger    *slog.Logger
	// Tracer records a span for each request and its trace context goes on to the
	// activator; nil traces nothing.
	Tracer *tracing.Tracer
	// TraceRelay, when set, takes the OTLP/HTTP spans queue-proxies send to the gateway's
	// own address on the pods' side (a FromPods listener, Host an IP address, path
	// /v1/traces): pods cannot reach a collector on the host's loopback themselves. No Route
	// has an IP address for a host, so nothing else answers there. Nil relays nothing.
	TraceRelay http.Handler
	// Console, when set, answers the hosts it serves that no Route has, on the host's side
	// only (never to pods): the dashboard.
	Console Console
	// DialPod connects to a pod's address (the activator's and the fast path's upstream
	// connections); nil dials TCP. In standalone it is the node's DialPod.
	DialPod func(ctx context.Context, network, addr string) (net.Conn, error)
	// Passer, when set, passes kept-alive client connections to the queue-proxies of this
	// machine's pods (internal/connpass), with Revisions' PassTarget choosing the pod; nil
	// passes none.
	Passer *connpass.Passer
}

// Console is a web console the gateway serves beside the Routes.
type Console interface {
	http.Handler
	// ServesHost reports whether the console answers host (without its port).
	ServesHost(host string) bool
}

// Bounds of the gateway's HTTP servers. A request's own duration is bounded by its revision's
// timeout in the queue-proxy, not here.
const (
	readHeaderTimeout = 30 * time.Second
	idleTimeout       = 5 * time.Minute
	maxHeaderBytes    = 1 << 20
	drainTimeout      = 30 * time.Second
)

// Gateway serves Ingresses over HTTP.
type Gateway struct {
	opts      Options
	log       *slog.Logger
	table     atomic.Pointer[table]
	listeners []net.Listener
	serving   chan struct{}
}

// New returns a gateway with an empty routing table.
func New(opts Options) *Gateway {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{opts: opts, log: opts.Logger.With("component", "gateway"), serving: make(chan struct{})}
	g.table.Store(buildTable(nil))
	return g
}

// SetupWithManager binds the listeners (a taken port fails here, by name), registers the
// Ingress controller, and adds the HTTP servers to the manager.
func (g *Gateway) SetupWithManager(_ context.Context, mgr manager.Manager) error {
	for _, l := range g.opts.Listeners {
		ln, err := net.Listen("tcp", l.Addr)
		if err != nil {
			g.closeListeners()
			return fmt.Errorf("gateway: listening on %s: %w", l.Addr, err)
		}
		g.listeners = append(g.listeners, ln)
	}
	if err := ctrl.NewControllerManagedBy(mgr).
		Named("gateway").
		For(&netv1alpha1.Ingress{}).
		// Each server's gateway keeps its own routing table: it reconciles on every server.
		WithOptions(controller.Options{NeedLeaderElection: ptr.To(false)}).
		Complete(g); err != nil {
		g.closeListeners()
		return err
	}
	return mgr.Add(lifecycle.OnEveryServer(g.serve))
}

func (g *Gateway) closeListeners() {
	for _, ln := range g.listeners {
		_ = ln.Close()
	}
}

// Addrs are the addresses the gateway listens on, once SetupWithManager has bound them.
func (g *Gateway) Addrs() []string {
	out := make([]string, len(g.listeners))
	for i, ln := range g.listeners {
		out[i] = ln.Addr().String()
	}
	return out
}

// serve runs the HTTP servers until ctx ends, then lets requests in flight finish.
func (g *Gateway) serve(ctx context.Context) error {
	servers := make([]server, len(g.listeners))
	errs := make(chan error, len(g.listeners))
	for i, ln := range g.listeners {
		l := g.opts.Listeners[i]
		var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.serveHTTP(w, r, l.fromPods(r)) })
		if l.Handler != nil {
			h = l.Handler
		}
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: readHeaderTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		}
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
		srv.ConnContext = markReturned
		servers[i] = srv
		if fast := g.fastPath(l); fast != nil {
			hs := &h1proxy.Server{Handler: fast, Fallback: srv, ReadHeaderTimeout: readHeaderTimeout,
				IdleTimeout: idleTimeout, MaxIdlePerHost: 100, UpstreamIdleTimeout: 90 * time.Second, Dial: g.opts.DialPod, Log: g.log}
			hs.Pass = fast.passer(hs)
			servers[i] = hs
		}
		go func() {
			if err := servers[i].Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("gateway on %s: %w", ln.Addr(), err)
			}
		}()
	}
	close(g.serving)
	g.log.Info("gateway serving", "addrs", g.Addrs())
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	drain, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer cancel()
	for _, srv := range servers {
		if serr := srv.Shutdown(drain); serr != nil {
			_ = srv.Close()
		}
	}
	return err
}

type returnedKey struct{}

// markReturned marks the context of a connection a queue-proxy gave back (connpass).
func markReturned(ctx context.Context, c net.Conn) context.Context {
	if connpass.IsReturned(c) {
		return context.WithValue(ctx, returnedKey{}, true)
	}
	return ctx
}

func returned(ctx context.Context) bool {
	v, _ := ctx.Value(returnedKey{}).(bool)
	return v
}

// server is one listener's HTTP server: net/http's, or the fast path in front of one.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// fromPods reports whether r came from a pod.
func (l Listener) fromPods(r *http.Request) bool { return l.fromPodsAddr(r.RemoteAddr) }

// fromPodsAddr reports whether a request from remote (ip:port) came from a pod.
func (l Listener) fromPodsAddr(remote string) bool {
	if !l.FromPods {
		return false
	}
	if l.Pods == nil {
		return true
	}
	ap, err := netip.ParseAddrPort(remote)
	return err == nil && l.Pods(ap.Addr())
}

// serveHTTP routes one request by its host.
func (g *Gateway) serveHTTP(w http.ResponseWriter, r *http.Request, fromPods bool) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if fromPods && g.opts.TraceRelay != nil && r.URL.Path == "/v1/traces" && net.ParseIP(host) != nil {
		g.opts.TraceRelay.ServeHTTP(w, r)
		return
	}
	rule := g.table.Load().lookup(host, fromPods)
	// A connection a pod's queue-proxy gave back carries what the pod read of it: it reaches
	// the Routes only, as a pod may, never the console.
	if rule == nil && !fromPods && g.opts.Console != nil && !returned(r.Context()) && g.opts.Console.ServesHost(host) {
		g.opts.Console.ServeHTTP(w, r)
		return
	}
	r, span := g.opts.Tracer.StartServer(r, "gateway")
	if rule == nil {
		http.Error(w, fmt.Sprintf("gantry: no Route serves the host %q", host), http.StatusNotFound)
		span.End(http.StatusNotFound)
		return
	}
	path, split := rule.choose(r.Header, roll())
	if split == nil {
		http.Error(w, fmt.Sprintf("gantry: no traffic target matches this request for %q", host), http.StatusNotFound)
		span.End(http.StatusNotFound)
		return
	}
	// The response's status is on the activator's span, the child of this one.
	defer span.End(0)
	if span.Recording() {
		span.SetAttributes(attribute.String("gantry.revision", split.ServiceNamespace+"/"+split.ServiceName))
	}
	for k, v := range path.AppendHeaders {
		r.Header.Set(k, v)
	}
	for k, v := range split.AppendHeaders {
		r.Header.Set(k, v)
	}
	setForwarded(r)
	g.opts.Revisions.ServeRevision(w, r, split.ServiceNamespace, split.ServiceName)
}

// setForwarded adds what Knative's ingress adds: the client to X-Forwarded-For and to an RFC
// 7239 Forwarded element, the scheme to X-Forwarded-Proto, and the original host to
// K-Original-Host.
func setForwarded(r *http.Request) {
	xff, fwd := forwarded.Values(r.RemoteAddr, r.Host, r.Header.Values("X-Forwarded-For"), r.Header.Values("Forwarded"))
	r.Header.Set("X-Forwarded-For", xff)
	r.Header.Set("X-Forwarded-Proto", "http")
	r.Header.Set("Forwarded", fwd)
	r.Header.Set("K-Original-Host", r.Host)
}

// Reconcile rebuilds the routing table from every Ingress and, once the gateway serves, marks
// the Ingress ready: it is programmed the moment the table is swapped in.
func (g *Gateway) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	// The table only reads the Ingresses, so it shares the cache's objects instead of copying
	// every Ingress on every change (with a thousand Routes, those copies were most of the
	// gateway's memory and a rebuild's time).
	list := &netv1alpha1.IngressList{}
	if err := g.opts.Client.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing ingresses: %w", err)
	}
	g.table.Store(buildTable(list.Items))

	ing := &netv1alpha1.Ingress{}
	if err := g.opts.Client.Get(ctx, req.NamespacedName, ing); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	select {
	case <-g.serving:
	default:
		return ctrl.Result{RequeueAfter: 50 * time.Millisecond}, nil
	}
	before := ing.Status.DeepCopy()
	ing.Status.InitializeConditions()
	ing.Status.MarkNetworkConfigured()
	ing.Status.MarkLoadBalancerReady()
	ing.Status.ObservedGeneration = ing.Generation
	if equality.Semantic.DeepEqual(before, &ing.Status) {
		return ctrl.Result{}, nil
	}
	if err := g.opts.Client.Status().Update(ctx, ing); err != nil {
		return ctrl.Result{}, fmt.Errorf("updating the status of ingress %s: %w", req.NamespacedName, err)
	}
	return ctrl.Result{}, nil
}
