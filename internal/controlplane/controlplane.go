package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"gopkg.in/natefinch/lumberjack.v2"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/rest"
	logsapi "k8s.io/component-base/logs/api/v1"

	"github.com/gantry-run/gantry/internal/controlplane/datadir"
	"github.com/gantry-run/gantry/internal/controlplane/pki"
)

// componentStopTimeout bounds how long one component may take to stop.
const componentStopTimeout = 20 * time.Second

// ErrAlreadyStarted is returned by a second Start in one process: the Kubernetes components
// register process-wide state that cannot be registered twice.
var ErrAlreadyStarted = errors.New("a control plane was already started in this process")

var started atomic.Bool

// ControlPlane is a running control plane.
type ControlPlane struct {
	cfg        Config
	dir        *datadir.Dir
	certs      pki.Bundle
	server     string
	kubeconfig string
	log        io.WriteCloser

	etcd       *embed.Etcd
	components []*component // in start order

	failOnce sync.Once
	failed   chan struct{}
	failErr  error
	stopping atomic.Bool
}

// component is one Kubernetes component running in its goroutine.
type component struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Start brings the control plane up and returns once the API server reports ready, or with the
// first error. ctx bounds the start only; the components run until Stop.
func Start(ctx context.Context, cfg Config) (cp *ControlPlane, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if started.Load() {
		return nil, ErrAlreadyStarted
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.ReadyTimeout)
	defer cancel()

	// Ports first: a refused start leaves the data dir untouched.
	if err := CheckListeners(cfg.listeners()...); err != nil {
		return nil, err
	}
	dir, err := datadir.Open(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	cfg.DataDir = dir.Path
	if err := checkEtcdData(etcdDataDir(dir.Path)); err != nil {
		dir.Close()
		return nil, err
	}
	cp = &ControlPlane{
		cfg:        cfg,
		dir:        dir,
		certs:      pki.Bundle{Dir: dir.Join("pki")},
		server:     "https://" + net.JoinHostPort(clientHost(cfg.BindAddress), fmt.Sprint(cfg.HTTPSPort)),
		kubeconfig: dir.Join("kubeconfig.yaml"),
		failed:     make(chan struct{}),
	}
	defer func() {
		if err != nil {
			_ = cp.stop(context.Background())
		}
	}()
	if err := cp.certs.Ensure(pki.Options{Hosts: servingHosts(cfg)},
		pki.Admin, pki.ControllerManager, pki.Scheduler, pki.APIServerKubeletClient, pki.Gantry); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir.Path, err)
	}
	if err := os.MkdirAll(dir.Join("kubeconfigs"), 0o700); err != nil {
		return nil, err
	}
	cmKubeconfig := dir.Join("kubeconfigs", "controller-manager.yaml")
	schedKubeconfig := dir.Join("kubeconfigs", "scheduler.yaml")
	for _, k := range []struct {
		client pki.Client
		path   string
	}{
		{pki.Admin, cp.kubeconfig},
		{pki.ControllerManager, cmKubeconfig},
		{pki.Scheduler, schedKubeconfig},
		{pki.Gantry, dir.Join("kubeconfigs", "gantry.yaml")},
	} {
		if err := writeKubeconfig(k.path, cp.server, cp.certs, k.client); err != nil {
			return nil, err
		}
	}
	if cp.log, err = openComponentLog(cfg.ComponentLog, dir); err != nil {
		return nil, err
	}
	// From here on the process holds the components' process-wide state.
	if !started.CompareAndSwap(false, true) {
		return nil, ErrAlreadyStarted
	}
	if err := applyLogging(cp.log, cfg.Verbosity); err != nil {
		return nil, err
	}

	if cp.etcd, err = startEtcd(ctx, cfg, cp.certs, cp.log); err != nil {
		return nil, err
	}
	api := cp.run("kube-apiserver", func(ctx context.Context) error {
		return runAPIServer(ctx, apiServerArgs(cfg, cp.certs))
	})
	if err := cp.waitReady(ctx, api); err != nil {
		return nil, err
	}
	cp.run("kube-controller-manager", func(ctx context.Context) error {
		return runControllerManager(ctx, controllerManagerArgs(cmKubeconfig, cp.certs))
	})
	cp.run("kube-scheduler", func(ctx context.Context) error {
		return runScheduler(ctx, schedulerArgs(schedKubeconfig))
	})
	go cp.watchEtcd()
	return cp, nil
}

// clientHost is the address clients use for a listen address: loopback for a wildcard.
func clientHost(bind string) string {
	if ip := net.ParseIP(bind); ip == nil || ip.IsUnspecified() {
		return "127.0.0.1"
	}
	return bind
}

func openComponentLog(path string, dir *datadir.Dir) (io.WriteCloser, error) {
	switch path {
	case "-":
		return nopCloser{os.Stderr}, nil
	case "":
		path = dir.Join("logs", "components.log")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("component log %s: %w", path, err)
	}
	// Open once now so an unwritable path fails here, not in the middle of a log line.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("component log: %w", err)
	}
	_ = f.Close()
	return &lumberjack.Logger{Filename: path, MaxSize: 50, MaxBackups: 3}, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// applyLogging routes klog (all three Kubernetes components) to w. The configuration is
// process-wide and applied once.
func applyLogging(w io.Writer, verbosity int) error {
	c := logsapi.NewLoggingConfiguration()
	c.Verbosity = logsapi.VerbosityLevel(verbosity)
	logsapi.ReapplyHandling = logsapi.ReapplyHandlingIgnoreUnchanged
	return logsapi.ValidateAndApplyWithOptions(c, &logsapi.LoggingOptions{ErrorStream: w, InfoStream: w}, utilfeature.DefaultFeatureGate)
}

// run starts fn in a goroutine as a named component. A component that returns while the
// control plane is not stopping has failed.
func (cp *ControlPlane) run(name string, fn func(ctx context.Context) error) *component {
	ctx, cancel := context.WithCancel(context.Background())
	c := &component{name: name, cancel: cancel, done: make(chan struct{})}
	cp.components = append(cp.components, c)
	go func() {
		defer close(c.done)
		c.err = fn(ctx)
		if !cp.stopping.Load() {
			err := c.err
			if err == nil {
				err = errors.New("exited")
			}
			cp.fail(fmt.Errorf("%s: %w", name, err))
		}
	}()
	return c
}

func (cp *ControlPlane) fail(err error) {
	cp.failOnce.Do(func() {
		cp.failErr = err
		close(cp.failed)
	})
}

// watchEtcd turns an etcd failure into a control plane failure.
func (cp *ControlPlane) watchEtcd() {
	select {
	case err, ok := <-cp.etcd.Err():
		if ok && err != nil && !cp.stopping.Load() {
			cp.fail(fmt.Errorf("etcd: %w", err))
		}
	case <-cp.etcd.Server.StopNotify():
		if !cp.stopping.Load() {
			cp.fail(errors.New("etcd: stopped"))
		}
	}
}

// waitReady polls the API server's /readyz until it answers ok.
func (cp *ControlPlane) waitReady(ctx context.Context, api *component) error {
	client, err := rest.HTTPClientFor(cp.RESTConfig())
	if err != nil {
		return err
	}
	client.Timeout = 2 * time.Second
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = probeReady(ctx, client, cp.server+"/readyz"); last == nil {
			return nil
		}
		select {
		case <-api.done:
			return fmt.Errorf("kube-apiserver: %w", api.errOrExited())
		case <-ctx.Done():
			return fmt.Errorf("API server not ready after %s: %w", cp.cfg.ReadyTimeout, last)
		case <-tick.C:
		}
	}
}

func (c *component) errOrExited() error {
	if c.err != nil {
		return c.err
	}
	return errors.New("exited")
}

func probeReady(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s", resp.Status)
	}
	return nil
}

// Failed is closed when a component stops on its own; Err then says why.
func (cp *ControlPlane) Failed() <-chan struct{} { return cp.failed }

// Err is the first component failure, or nil.
func (cp *ControlPlane) Err() error {
	select {
	case <-cp.failed:
		return cp.failErr
	default:
		return nil
	}
}

// RESTConfig is an admin client configuration for the API server.
func (cp *ControlPlane) RESTConfig() *rest.Config {
	return restConfig(cp.server, cp.certs, pki.Admin)
}

// GantryRESTConfig is the client configuration of Gantry's own in-process controllers.
func (cp *ControlPlane) GantryRESTConfig() *rest.Config {
	return restConfig(cp.server, cp.certs, pki.Gantry)
}

// Certs is the control plane's PKI: the cluster CA and the webhook's serving certificate.
func (cp *ControlPlane) Certs() pki.Bundle { return cp.certs }

// Server is the API server's URL.
func (cp *ControlPlane) Server() string { return cp.server }

// KubeconfigPath is the admin kubeconfig written at start.
func (cp *ControlPlane) KubeconfigPath() string { return cp.kubeconfig }

// DataDir is the absolute path of the data directory.
func (cp *ControlPlane) DataDir() string { return cp.dir.Path }

// DataDirJoin is a path inside the data directory.
func (cp *ControlPlane) DataDirJoin(elem ...string) string { return cp.dir.Join(elem...) }

// Fresh reports whether this start initialised the data directory.
func (cp *ControlPlane) Fresh() bool { return cp.dir.Fresh }

// Stop stops the components in reverse start order, etcd last, and releases the data dir.
// Each component gets a bounded time; ctx bounds the whole.
func (cp *ControlPlane) Stop(ctx context.Context) error {
	return cp.stop(ctx)
}

func (cp *ControlPlane) stop(ctx context.Context) error {
	cp.stopping.Store(true)
	var errs []error
	for i := len(cp.components) - 1; i >= 0; i-- {
		c := cp.components[i]
		c.cancel()
		timer := time.NewTimer(componentStopTimeout)
		select {
		case <-c.done:
			// What a component returns once cancelled is how it ended, not a failure (the
			// scheduler, for one, always says "finished without leader elect").
			if c.err != nil && cp.log != nil {
				fmt.Fprintf(cp.log, "gantry: %s stopped: %v\n", c.name, c.err)
			}
		case <-timer.C:
			errs = append(errs, fmt.Errorf("%s did not stop within %s", c.name, componentStopTimeout))
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("%s: %w", c.name, ctx.Err()))
		}
		timer.Stop()
	}
	if cp.etcd != nil {
		cp.etcd.Close()
	}
	if cp.log != nil {
		_ = cp.log.Close()
	}
	cp.dir.Close()
	return errors.Join(errs...)
}
