// Package queue is the queue-proxy that runs beside every revision's user container, as
// Knative's does. On its serving port it forwards requests to the user container on loopback
// through a chain of small handlers: drain and probe answers, request metrics, timeouts
// (total, to the first byte, idle), forwarded headers, the autoscaler's stats and the
// containerConcurrency breaker with its bounded queue, and the proxy (HTTP/1.1, h2c,
// websockets, streaming). Its admin port answers the pod's readiness, which passes once the
// user container's probe does and fails first thing on shutdown; its metrics port serves the
// autoscaler's stats every second; its user metrics port serves Prometheus request metrics.
// On shutdown it fails readiness, keeps serving until requests stop arriving, and finishes
// every request in flight before it exits.
//
// The ports, environment and headers it shares with the rest of Gantry live in
// internal/queue/contract.
package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/gantry-run/gantry/internal/connpass"
	"github.com/gantry-run/gantry/internal/h1proxy"
	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/tracing"
)

// QueueProxy is one pod's queue-proxy: build it with New, then Serve.
type QueueProxy struct {
	cfg       Config
	log       *slog.Logger
	readiness *Readiness
	stats     *RequestStats
	breaker   *Breaker
	reporter  *statsReporter
	metrics   *requestMetrics
	drainer   *drainer
	tracer    *tracing.Tracer // nil: tracing off
}

// New builds the queue-proxy of cfg; log nil logs nowhere.
func New(cfg Config, log *slog.Logger) (*QueueProxy, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.UserPort < 1 || cfg.UserPort > 65535 {
		return nil, fmt.Errorf("queue-proxy: user port %d is not a port", cfg.UserPort)
	}
	if cfg.ContainerConcurrency < 0 {
		return nil, fmt.Errorf("queue-proxy: container concurrency %d is negative", cfg.ContainerConcurrency)
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = max(cfg.Timeout, 30*time.Second)
	}
	now := time.Now()
	q := &QueueProxy{
		cfg:       cfg,
		log:       log,
		readiness: NewReadiness(cfg.ReadinessProbes, cfg.UserPort),
		stats:     NewRequestStats(now),
		reporter:  newStatsReporter(&cfg, now, statsReportingPeriod),
		metrics:   newRequestMetrics(&cfg, cfg.ContainerConcurrency > 0),
	}
	if cfg.ContainerConcurrency > 0 {
		b, err := NewBreaker(cfg.ContainerConcurrency, queueDepthFactor*cfg.ContainerConcurrency)
		if err != nil {
			return nil, fmt.Errorf("queue-proxy: %w", err)
		}
		q.breaker = b
	}
	tracer, err := tracing.New(tracing.Options{
		Endpoint:      cfg.TracingEndpoint,
		Service:       "queue-proxy",
		SamplingRatio: cfg.TracingSamplingRatio,
		Attributes: []attribute.KeyValue{
			attribute.String("k8s.namespace.name", cfg.Namespace),
			attribute.String("k8s.pod.name", cfg.Pod),
			attribute.String("gantry.revision", cfg.Revision),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("queue-proxy: tracing: %w", err)
	}
	q.tracer = tracer
	q.drainer = newHandler(q, newProxy(cfg.UserPort, cfg.UserProtocol, cfg.ContainerConcurrency, log))
	return q, nil
}

// Handler is the serving port's handler chain.
func (q *QueueProxy) Handler() http.Handler { return q.drainer }

// AdminHandler answers the pod's readiness probe at contract.ReadinessPath.
func (q *QueueProxy) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", q.readiness)
	return mux
}

// StatsHandler serves the autoscaler's stats (Prometheus text; see ParseStats).
func (q *QueueProxy) StatsHandler() http.Handler { return q.reporter.handler() }

// MetricsHandler serves the Prometheus request metrics.
func (q *QueueProxy) MetricsHandler() http.Handler { return q.metrics.handler() }

// Readiness is the pod's readiness.
func (q *QueueProxy) Readiness() *Readiness { return q.readiness }

// Listeners are where the queue-proxy serves.
type Listeners struct {
	Serving, Admin, Stats, Metrics net.Listener
	// H2C is the second serving port (Config.H2CPort), nil without one.
	H2C net.Listener
	// Socket serves what Serving serves on Config.Socket, nil without one.
	Socket net.Listener
	// Pass takes the client connections the gateway passes (internal/connpass), beside
	// Socket; nil without one.
	Pass net.Listener
}

// Listen opens the ports of cfg on every interface of the pod.
func Listen(cfg Config) (Listeners, error) {
	var ls Listeners
	var opened []net.Listener
	for _, p := range []struct {
		port int
		dst  *net.Listener
	}{
		{cfg.ServingPort, &ls.Serving}, {cfg.AdminPort, &ls.Admin}, {cfg.MetricsPort, &ls.Stats}, {cfg.UserMetricsPort, &ls.Metrics},
		{cfg.H2CPort, &ls.H2C},
	} {
		if p.dst == &ls.H2C && p.port == 0 {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(p.port)))
		if err != nil {
			for _, o := range opened {
				_ = o.Close()
			}
			return Listeners{}, fmt.Errorf("queue-proxy: listening on port %d: %w", p.port, err)
		}
		opened = append(opened, l)
		*p.dst = l
	}
	if cfg.Socket != "" {
		l, err := listenSocket(cfg.Socket)
		if err != nil {
			for _, o := range opened {
				_ = o.Close()
			}
			return Listeners{}, err
		}
		ls.Socket = l
		if ls.Pass, err = listenPass(filepath.Join(filepath.Dir(cfg.Socket), contract.PassSocketName)); err != nil {
			for _, o := range append(opened, l) {
				_ = o.Close()
			}
			return Listeners{}, err
		}
	}
	return ls, nil
}

// Run listens on cfg's ports and serves until ctx ends, then drains; see Serve.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	q, err := New(cfg, log)
	if err != nil {
		return err
	}
	ls, err := Listen(cfg)
	if err != nil {
		return err
	}
	return q.Serve(ctx, ls)
}

// Serve serves on ls until ctx ends, then shuts down in order: readiness fails at once; the
// serving port keeps serving until no request has arrived for the quiet period (at most
// half the drain timeout); then it stops accepting connections, and every request in flight
// (websockets included) runs to its end. The drain timeout bounds the whole; requests still
// running then are cut, and Serve says how many. Serve closes the listeners. It returns nil
// after a clean drain, and an error when a server fails.
func (q *QueueProxy) Serve(ctx context.Context, ls Listeners) error {
	front := q.servingServer()
	side := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(q.log.Handler(), slog.LevelWarn),
		}
	}
	admin, stats, metrics := side(q.AdminHandler()), side(q.StatsHandler()), side(q.MetricsHandler())
	servers := []struct {
		name string
		srv  server
		l    net.Listener
	}{{"serving", front, ls.Serving}, {"serving h2c", front, ls.H2C}, {"serving socket", front, ls.Socket}, {"admin", admin, ls.Admin}, {"stats", stats, ls.Stats}, {"metrics", metrics, ls.Metrics}}

	bg, stopBackground := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { q.readiness.Run(bg) })
	wg.Go(func() { q.report(bg) })
	defer func() {
		stopBackground()
		wg.Wait()
	}()

	failed := make(chan error, len(servers))
	for _, s := range servers {
		if s.l == nil {
			continue
		}
		go func() {
			if err := s.srv.Serve(s.l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				failed <- fmt.Errorf("queue-proxy: %s server: %w", s.name, err)
			}
		}()
	}
	if hs, ok := front.(*h1proxy.Server); ok && ls.Pass != nil {
		// Passed connections are served by the fast path as the gateway's requests through
		// the socket are, with the same peer.
		rcv := &connpass.Receiver{Server: hs, Peer: socketPeer(ls.Socket), Log: q.log}
		go func() {
			if err := rcv.Serve(ls.Pass); err != nil {
				failed <- fmt.Errorf("queue-proxy: passed connections: %w", err)
			}
		}()
	} else if ls.Pass != nil {
		_ = ls.Pass.Close()
	}
	q.log.Info("queue-proxy serving", "user_port", q.cfg.UserPort, "container_concurrency", q.cfg.ContainerConcurrency)

	closeAll := func() {
		if ls.Pass != nil {
			_ = ls.Pass.Close()
		}
		for _, s := range servers {
			_ = s.srv.Close()
		}
	}
	select {
	case err := <-failed:
		closeAll()
		return err
	case <-ctx.Done():
	}

	start := time.Now()
	deadline, cancel := context.WithTimeout(context.Background(), q.cfg.DrainTimeout)
	defer cancel()
	q.drainer.startDrain()
	q.log.Info("queue-proxy draining: readiness fails, serving until requests stop arriving", "quiet_period", q.cfg.QuietPeriod)
	acceptUntil, cancelAccept := context.WithTimeout(deadline, q.cfg.DrainTimeout/2)
	q.drainer.waitQuiet(acceptUntil, q.cfg.QuietPeriod)
	cancelAccept()

	var errs []error
	if err := front.Shutdown(deadline); err != nil {
		errs = append(errs, fmt.Errorf("queue-proxy: draining the serving port: %w", err))
	}
	if err := q.drainer.waitIdle(deadline); err != nil {
		errs = append(errs, fmt.Errorf("queue-proxy: %d requests still in flight after %s: %w",
			q.drainer.inflight.Load(), q.cfg.DrainTimeout, err))
	}
	closeAll()
	flush, cancelFlush := context.WithTimeout(context.Background(), 2*time.Second)
	if err := q.tracer.Shutdown(flush); err != nil {
		q.log.Warn("queue-proxy: sending the last spans", "err", err)
	}
	cancelFlush()
	q.log.Info("queue-proxy drained", "took", time.Since(start).Round(time.Millisecond))
	return errors.Join(errs...)
}

// servingServer is the serving port's server: the handler chain over HTTP/1.1 and h2c, and in
// front of it the fast path for plain HTTP/1.1 requests (all but those it declines).
func (q *QueueProxy) servingServer() server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	serving := &http.Server{
		Handler:           q.drainer,
		Protocols:         &protocols,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute, // longer than clients keep idle connections (90 s in Go)
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(q.log.Handler(), slog.LevelWarn),
	}
	fast := newFastPath(q)
	if fast == nil {
		return serving
	}
	return &h1proxy.Server{Handler: fast, Fallback: serving, ReadHeaderTimeout: serving.ReadHeaderTimeout,
		IdleTimeout: serving.IdleTimeout, MaxIdlePerHost: q.maxIdle(), UpstreamIdleTimeout: 90 * time.Second, Log: q.log}
}

// server is an HTTP server of the queue-proxy: net/http's, or the fast path in front of one.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// maxIdle is how many idle connections to the user container are kept: as many as may be in
// flight (Knative's 1000 when unlimited).
func (q *QueueProxy) maxIdle() int {
	if q.cfg.ContainerConcurrency > 0 {
		return q.cfg.ContainerConcurrency
	}
	return 1000
}

// report publishes the stats every reporting period until ctx ends.
func (q *QueueProxy) report(ctx context.Context) {
	t := time.NewTicker(statsReportingPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			q.reporter.report(q.stats.Report(now), now)
			if q.breaker != nil {
				q.metrics.queueDepth.Set(float64(q.breaker.InFlight()))
			}
		}
	}
}
