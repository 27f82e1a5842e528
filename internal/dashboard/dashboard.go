// Package dashboard is Gantry's web console: one page that lists the Knative Services with
// their URLs, readiness and revisions, draws each one's requests, latency, pods and
// concurrency over the last fifteen minutes as they move (pushed to the page over
// server-sent events), shows and edits its traffic split, its recent events, its pods' last
// log lines and its serverless usage, and lists the serverless profiles with their nodes.
//
// The figures come from the server's own Prometheus registry (the activator's request
// metrics, the autoscaler's gauges) and its PodAutoscalers, sampled once per interval by one
// loop whatever the number of viewers; each tick is encoded once and the same bytes go to
// every page. Objects are read through the serving manager's cache, so the package runs
// wherever the serving stack does.
package dashboard

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/gantry-run/gantry/internal/kn"
	sv1alpha1 "github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// Host is the gateway's host name for the dashboard (besides localhost and IP addresses).
const Host = "gantry.localhost"

// Defaults.
const (
	defaultInterval = 2 * time.Second
	defaultWindow   = 15 * time.Minute
	// maxViewers bounds the pages streaming at once; more are refused with 503.
	maxViewers = 32
	// viewerBuffer is how many ticks wait for a slow page before it misses some.
	viewerBuffer = 4
	// writeTimeout bounds a write to one page.
	writeTimeout = 10 * time.Second
	// tokenCookie carries the token once a page was opened with ?token=.
	tokenCookie = "gantry-dashboard-token"
)

//go:embed static
var static embed.FS

// Options configure a Dashboard.
type Options struct {
	// Gatherer is the server's metrics registry.
	Gatherer prometheus.Gatherer
	// Client reads Services, Revisions, PodAutoscalers, profiles and nodes and writes
	// Services' traffic; SetupWithManager sets the manager's (cache-backed) client.
	Client client.Client
	// Kube lists events and reads pods' logs.
	Kube kubernetes.Interface
	// UsageDB is the metering database's path; empty shows no usage.
	UsageDB string
	// Token, when set, opens the dashboard to clients beyond loopback that present it.
	Token string
	// Addr, when set, is an address of the dashboard's own (besides the gateway's host).
	Addr string
	// GatewayPort, when set, is the port the gateway serves Routes on, which the links to
	// services carry (their URLs have none).
	GatewayPort int
	// Interval between samples (default 2 s) and Window of history kept (default 15 min).
	Interval, Window time.Duration
	Logger           *slog.Logger
}

// Dashboard serves the console.
type Dashboard struct {
	opts  Options
	log   *slog.Logger
	cache client.Client
	ln    net.Listener
	// prev is the last tick's sample, by service; only the sampler touches it.
	prev map[string]*kn.MetricsSample

	mu      sync.Mutex
	history *history
	// last are the latest encoded services and profiles, sent again only when they change.
	lastServices, lastProfiles []byte
	viewers                    map[chan []byte]struct{}
}

// New returns a dashboard; it samples once it joins a manager.
func New(opts Options) *Dashboard {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Interval <= 0 {
		opts.Interval = defaultInterval
	}
	if opts.Window <= 0 {
		opts.Window = defaultWindow
	}
	return &Dashboard{
		cache:   opts.Client,
		opts:    opts,
		log:     opts.Logger.With("component", "dashboard"),
		history: newHistory(opts.Window, opts.Interval),
		viewers: map[chan []byte]struct{}{},
	}
}

// SetupWithManager reads objects through mgr's cache, binds the dashboard's own address (a
// taken port fails here, by name) and adds the sampler and that server to mgr.
func (d *Dashboard) SetupWithManager(_ context.Context, mgr manager.Manager) error {
	if err := sv1alpha1.AddToScheme(mgr.GetScheme()); err != nil {
		return err
	}
	d.cache = mgr.GetClient()
	if d.opts.Addr != "" {
		ln, err := net.Listen("tcp", d.opts.Addr)
		if err != nil {
			return fmt.Errorf("--dashboard-address: %w", err)
		}
		d.ln = ln
		if err := mgr.Add(runnable(d.serve)); err != nil {
			return err
		}
	}
	return mgr.Add(runnable(d.sample))
}

// runnable runs on every replica: each serves its own page.
type runnable func(ctx context.Context) error

func (r runnable) Start(ctx context.Context) error { return r(ctx) }
func (r runnable) NeedLeaderElection() bool        { return false }

// Addr is the dashboard's own address, once bound ("" without one).
func (d *Dashboard) Addr() string {
	if d.ln == nil {
		return ""
	}
	return d.ln.Addr().String()
}

func (d *Dashboard) serve(ctx context.Context) error {
	srv := &http.Server{
		Handler:           d,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
	}
	errs := make(chan error, 1)
	go func() { errs <- srv.Serve(d.ln) }()
	d.log.Info("dashboard serving", "url", "http://"+d.ln.Addr().String()+"/")
	select {
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdown); err != nil {
			_ = srv.Close()
		}
		return nil
	case err := <-errs:
		return fmt.Errorf("dashboard on %s: %w", d.ln.Addr(), err)
	}
}

// ServesHost reports whether the gateway hands a request for host (no port) to the
// dashboard: its own name, localhost, or an IP address (no Route has one).
func (d *Dashboard) ServesHost(host string) bool { return servesHost(host) }

func servesHost(host string) bool {
	return host == Host || host == "localhost" || net.ParseIP(host) != nil
}

// ServeHTTP serves the page, its assets and its API, to whom may see them.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !d.authorize(w, r) {
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:")
	w.Header().Set("Referrer-Policy", "no-referrer")
	switch path := r.URL.Path; {
	case path == "/" || path == "/index.html":
		d.file(w, r, "static/index.html")
	case strings.HasPrefix(path, "/static/"):
		d.file(w, r, strings.TrimPrefix(path, "/"))
	case path == "/api/stream":
		d.stream(w, r)
	case path == "/api/overview":
		d.overview(w, r)
	case strings.HasPrefix(path, "/api/services/"):
		d.service(w, r, strings.TrimPrefix(path, "/api/services/"))
	default:
		http.Error(w, fmt.Sprintf("the dashboard has no page %q", path), http.StatusNotFound)
	}
}

func (d *Dashboard) file(w http.ResponseWriter, r *http.Request, name string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "only GET", http.StatusMethodNotAllowed)
		return
	}
	if _, err := fs.Stat(static, name); err != nil {
		http.Error(w, fmt.Sprintf("the dashboard has no file %q", r.URL.Path), http.StatusNotFound)
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, static, name)
}

// authorize lets a loopback client in when it names the dashboard's host (a page of another
// site that a rebound DNS name points at this machine does not), and anyone who presents
// the token. A token given as ?token= is kept in a cookie for the page's own requests.
func (d *Dashboard) authorize(w http.ResponseWriter, r *http.Request) bool {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if d.opts.Token != "" {
		given := ""
		if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			given = v
		} else if v := r.URL.Query().Get("token"); v != "" {
			given = v
			if subtle.ConstantTimeCompare([]byte(given), []byte(d.opts.Token)) == 1 {
				http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: given, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			}
		} else if c, err := r.Cookie(tokenCookie); err == nil {
			given = c.Value
		}
		if given != "" {
			if subtle.ConstantTimeCompare([]byte(given), []byte(d.opts.Token)) == 1 {
				return true
			}
			http.Error(w, "gantry dashboard: the token is wrong", http.StatusUnauthorized)
			return false
		}
	}
	if loopback(r.RemoteAddr) && servesHost(host) {
		return true
	}
	if d.opts.Token == "" {
		http.Error(w, "gantry dashboard: it answers only on this machine (loopback); start gantry server with --dashboard-token-file to open it to others with a token", http.StatusForbidden)
		return false
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="gantry dashboard"`)
	http.Error(w, "gantry dashboard: a token is required: open /?token=TOKEN (the server's --dashboard-token-file)", http.StatusUnauthorized)
	return false
}

func loopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sample ticks until ctx ends: gathers the metrics, records every service's point and sends
// the tick to the pages.
func (d *Dashboard) sample(ctx context.Context) error {
	t := time.NewTicker(d.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			d.closeViewers()
			return nil
		case now := <-t.C:
			if err := d.Tick(ctx, now); err != nil {
				d.log.Debug("sampling", "err", err)
			}
		}
	}
}

// Tick takes one sample at now and sends it to the pages: the sampler calls it every
// interval (benchmarks call it directly). Calls must not overlap.
func (d *Dashboard) Tick(ctx context.Context, now time.Time) error {
	cur, err := d.tick(ctx, now, d.prev)
	if err != nil {
		return err
	}
	d.prev = cur
	return nil
}

// errNoGatherer: the server runs without a registry.
var errNoGatherer = errors.New("no metrics registry")
