package scalerelay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Bounds of the endpoint.
const (
	// maxConns bounds the open connections: one or two per other server.
	maxConns = 64
	// maxBody bounds a request's body; maxStats the loads of one batch.
	maxBody  = 1 << 20
	maxStats = 10000
	// wakeTimeout bounds the autoscaler's decision for one wake-up.
	wakeTimeout       = 10 * time.Second
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 15 * time.Second
	idleTimeout       = 2 * time.Minute
	shutdownTimeout   = 5 * time.Second
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// Addr is where it listens (host:port).
	Addr string
	// Local is this server's autoscaler.
	Local Local
	// Elected is closed once this server leads (controller-runtime's mgr.Elected()): until
	// then every request gets 503, and the caller looks for the leader again.
	Elected <-chan struct{}
	// Cert is the serving certificate; ClientCAs verify the clients' certificates, whose
	// common name must be ClientName.
	Cert       tls.Certificate
	ClientCAs  *x509.CertPool
	ClientName string
	Logger     *slog.Logger
	// Now is the clock the loads are stamped with on arrival; default time.Now.
	Now func() time.Time
}

// Server is the autoscaler's endpoint. It is a lifecycle part: Start serves until ctx ends.
type Server struct {
	opts ServerOptions
	log  *slog.Logger
	ln   net.Listener
}

// NewServer checks opts and binds the address (a port in use fails here, by name).
func NewServer(opts ServerOptions) (*Server, error) {
	if opts.Local == nil || opts.Elected == nil || opts.ClientCAs == nil || opts.ClientName == "" || len(opts.Cert.Certificate) == 0 {
		return nil, errors.New("autoscaler endpoint: the autoscaler, the election, a certificate and the clients' CA and name are needed")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("autoscaler endpoint: listening on %s: %w", opts.Addr, err)
	}
	return &Server{opts: opts, log: opts.Logger.With("component", "autoscaler-endpoint"), ln: ln}, nil
}

// Addr is the address it listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Handler is the endpoint's HTTP handler, behind the TLS client check.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+ScaleFromZeroPath, s.wake)
	mux.HandleFunc("POST "+StatsPath, s.stats)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != s.opts.ClientName {
			http.Error(w, "forbidden: only the cluster's servers may call the autoscaler", http.StatusForbidden)
			return
		}
		select {
		case <-s.opts.Elected:
		default:
			http.Error(w, "not the serving leader", http.StatusServiceUnavailable)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) wake(w http.ResponseWriter, r *http.Request) {
	var req WakeUp
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Namespace == "" || req.Revision == "" {
		http.Error(w, "a JSON body with namespace and revision", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), wakeTimeout)
	defer cancel()
	if err := s.opts.Local.ScaleFromZero(ctx, req.Namespace, req.Revision); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	var batch []Stat
	if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
		http.Error(w, "a JSON list of loads", http.StatusBadRequest)
		return
	}
	if len(batch) > maxStats {
		http.Error(w, fmt.Sprintf("at most %d loads in a batch", maxStats), http.StatusRequestEntityTooLarge)
		return
	}
	now := s.opts.Now()
	for _, st := range batch {
		if st.Namespace == "" || st.Revision == "" || st.Concurrency < 0 || st.RPS < 0 {
			continue
		}
		s.opts.Local.Report(st.Namespace, st.Revision, now, st.Concurrency, st.RPS)
	}
	w.WriteHeader(http.StatusNoContent)
}

// Start serves until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{s.opts.Cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    s.opts.ClientCAs,
			NextProtos:   []string{"http/1.1"},
		},
	}
	errc := make(chan error, 1)
	go func() {
		if err := srv.ServeTLS(netutil.LimitListener(s.ln, maxConns), "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("autoscaler endpoint on %s: %w", s.ln.Addr(), err)
		}
		close(errc)
	}()
	s.log.Info("autoscaler endpoint serving", "addr", s.ln.Addr().String())
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(stop); err != nil {
		_ = srv.Close()
	}
	return nil
}

// drain reads what is left of a response body so its connection is kept.
func drain(r io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r, 64<<10))
	_ = r.Close()
}
