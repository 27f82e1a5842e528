// Package promserver serves gantry server's Prometheus metrics: one registry that the server's
// parts register their collectors in, served at /metrics on --metrics-address, and with
// --profiling Go's profiles at /debug/pprof/.
package promserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// DefaultAddr is where the metrics are served by default: loopback only.
const DefaultAddr = "127.0.0.1:9095"

// ComponentsPath serves the embedded control plane's own metrics (Options.Components).
const ComponentsPath = "/metrics/components"

// Server serves a registry's metrics.
type Server struct {
	// Registry is where the parts register; it starts with the Go runtime's and the
	// process's collectors.
	Registry *prometheus.Registry

	components prometheus.Gatherer // nil: none
	addr       string
	ln         net.Listener
	profiling  bool
	log        *slog.Logger
	ready      chan struct{}
}

// Options configure a Server.
type Options struct {
	// Profiling also serves Go's profiles at /debug/pprof/ (--profiling).
	Profiling bool
	// Components are the registries the embedded control plane's components (API server,
	// etcd, scheduler) register their metrics in, served apart at ComponentsPath: their names
	// are Kubernetes' and etcd's, which do not all follow Prometheus's naming rules, and
	// /metrics keeps to Gantry's own. A metric family an earlier registry has (the Go
	// runtime's) is left out of the later ones.
	Components []prometheus.Gatherer
	Logger     *slog.Logger
}

// New listens on addr at once, so a port in use is reported when the server starts.
func New(addr string, opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-address: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var components prometheus.Gatherer
	if len(opts.Components) > 0 {
		components = firstWins(opts.Components)
	}
	return &Server{Registry: reg, components: components, addr: ln.Addr().String(), ln: ln, profiling: opts.Profiling, log: log.With("component", "metrics"), ready: make(chan struct{})}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.addr }

// Ready is closed once the server serves.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Start serves /metrics until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	mux := http.NewServeMux()
	opts := promhttp.HandlerOpts{
		// A scrape that takes longer than this is cut, and a second scrape waits for none.
		Timeout:             10 * time.Second,
		MaxRequestsInFlight: 4,
	}
	mux.Handle("/metrics", promhttp.HandlerFor(s.Registry, opts))
	if s.components != nil {
		mux.Handle(ComponentsPath, promhttp.HandlerFor(s.components, opts))
	}
	if s.profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		// A CPU profile or trace may be asked for up to a minute.
		WriteTimeout:   90 * time.Second,
		IdleTimeout:    time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.ln) }()
	s.log.Info("metrics serving", "addr", s.addr)
	close(s.ready)
	select {
	case err := <-errc:
		return fmt.Errorf("metrics server: %w", err)
	case <-ctx.Done():
	}
	stop, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(stop); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// firstWins gathers from every source in order and keeps each metric family from the first
// source that has it.
func firstWins(sources []prometheus.Gatherer) prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		seen := map[string]bool{}
		var out []*dto.MetricFamily
		var errs []error
		for _, g := range sources {
			mfs, err := g.Gather()
			if err != nil {
				errs = append(errs, err)
			}
			for _, mf := range mfs {
				if seen[mf.GetName()] {
					continue
				}
				seen[mf.GetName()] = true
				out = append(out, mf)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
		return out, errors.Join(errs...)
	})
}
