package resourcemetrics

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"

	"github.com/gantry-run/gantry/internal/controlplane/pki"
	"github.com/gantry-run/gantry/internal/sandbox"
	sv1alpha1 "github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// Source reads the cgroups: a *sandbox.Manager.
type Source interface {
	// Usage is the usage of the sandbox of the pod with that UID.
	Usage(sandboxID string) (sandbox.PodUsage, error)
	HostUsage() (sandbox.Usage, error)
}

var _ Source = (*sandbox.Manager)(nil)

// Options configure a Server.
type Options struct {
	// RESTConfig reaches the API server, to watch the node's pods and register the APIService.
	RESTConfig *rest.Config
	Source     Source
	// NodeName is the node whose pods are measured.
	NodeName string
	// Address is the IP the TLS listener binds (on a free port); the API server dials it, so
	// it may not be loopback (an EndpointSlice refuses one). The node's InternalIP.
	Address net.IP
	// CertFile and KeyFile serve TLS for pki.MetricsAPIHost; CAFile is the CA that issued
	// them (the APIService's caBundle); ClientCAFile issues the aggregator's certificate.
	CertFile, KeyFile, CAFile, ClientCAFile string
	// Interval and Window default to DefaultInterval and DefaultWindow.
	Interval, Window time.Duration
	Logger           *slog.Logger
}

// Server samples the node's pods and serves metrics.k8s.io.
type Server struct {
	opts    Options
	log     *slog.Logger
	history *history
	ready   chan struct{}
}

// New checks opts; Start runs the server.
func New(opts Options) (*Server, error) {
	if opts.RESTConfig == nil || opts.Source == nil || opts.NodeName == "" {
		return nil, errors.New("resource metrics: a REST config, a source and a node name are required")
	}
	if opts.Address == nil || opts.Address.IsLoopback() || opts.Address.IsUnspecified() {
		return nil, fmt.Errorf("resource metrics: address %v: the API server must reach it through an EndpointSlice, which refuses loopback and unspecified addresses", opts.Address)
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Server{opts: opts, log: opts.Logger.With("component", "resource-metrics"), history: newHistory(opts.Window), ready: make(chan struct{})}, nil
}

// Ready is closed once the server listens and samples.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Start samples, serves and keeps the APIService registered until ctx ends.
func (s *Server) Start(ctx context.Context) error {
	tlsConfig, err := s.tlsConfig()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(s.opts.Address.String(), "0"))
	if err != nil {
		return fmt.Errorf("resource metrics: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	srv := &http.Server{
		Handler:           fromAggregator([]string{pki.FrontProxyClientName}, &handler{src: s.history, node: s.opts.NodeName}),
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	defer func() {
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()

	clientset, err := kubernetes.NewForConfig(s.opts.RESTConfig)
	if err != nil {
		return err
	}
	// The node's pods: those of the shared node, and those the serverless scheduler places,
	// each on a serverless node of its own that this node serves.
	var pods []corelisters.PodLister
	for _, sel := range []fields.Selector{
		fields.OneTermEqualSelector("spec.nodeName", s.opts.NodeName),
		fields.OneTermEqualSelector("spec.schedulerName", sv1alpha1.SchedulerName),
	} {
		factory := informers.NewSharedInformerFactoryWithOptions(clientset, 10*time.Minute,
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = sel.String() }))
		pods = append(pods, factory.Core().V1().Pods().Lister())
		factory.Start(ctx.Done())
		defer factory.Shutdown()
		for t, ok := range factory.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return fmt.Errorf("resource metrics: cache of %v did not sync", t)
			}
		}
	}
	reg, err := s.registration(port)
	if err != nil {
		return err
	}
	go reg.keep(ctx, clientset)

	s.sample(pods, time.Now())
	close(s.ready)
	tick := time.NewTicker(s.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-served:
			return fmt.Errorf("resource metrics: serving: %w", err)
		case now := <-tick.C:
			s.sample(pods, now)
		}
	}
}

// sample reads the cgroups of the node's running pods and of the host.
func (s *Server) sample(listers []corelisters.PodLister, now time.Time) {
	var list []*corev1.Pod
	for _, l := range listers {
		pods, err := l.List(labels.Everything())
		if err != nil {
			s.log.Warn("listing pods", "err", err)
			return
		}
		list = append(list, pods...)
	}
	metas := map[types.UID]metav1.ObjectMeta{}
	usages := map[types.UID]sandbox.PodUsage{}
	for _, p := range list {
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		u, err := s.opts.Source.Usage(string(p.UID))
		if err != nil {
			if !errors.Is(err, sandbox.ErrNotFound) {
				s.log.Debug("reading a pod's cgroups", "pod", p.Namespace+"/"+p.Name, "err", err)
			}
			continue
		}
		metas[p.UID] = metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels}
		usages[p.UID] = u
	}
	var host *sandbox.Usage
	if u, err := s.opts.Source.HostUsage(); err == nil {
		host = &u
	} else {
		s.log.Debug("reading the host's cgroups", "err", err)
	}
	s.history.observe(now, metas, usages, host)
}

func (s *Server) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(s.opts.CertFile, s.opts.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("resource metrics: serving certificate: %w", err)
	}
	pem, err := os.ReadFile(s.opts.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("resource metrics: client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("resource metrics: client CA %s: no certificate", s.opts.ClientCAFile)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		// A client without a certificate gets a 401 naming the rule, not a failed handshake.
		ClientAuth: tls.VerifyClientCertIfGiven,
		MinVersion: tls.VersionTLS12,
	}, nil
}

// registration is the APIService, Service and EndpointSlice that route metrics.k8s.io here.
func (s *Server) registration(port int) (*registration, error) {
	ca, err := os.ReadFile(s.opts.CAFile)
	if err != nil {
		return nil, fmt.Errorf("resource metrics: CA: %w", err)
	}
	agg, err := aggregator.NewForConfig(s.opts.RESTConfig)
	if err != nil {
		return nil, err
	}
	return &registration{
		objects:    makeObjects(s.opts.Address, int32(port), ca),
		aggregator: agg,
		log:        s.log.With("port", strconv.Itoa(port)),
	}, nil
}
