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
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	logsapi "k8s.io/component-base/logs/api/v1"

	"github.com/gantry-run/gantry/internal/controlplane/datadir"
	"github.com/gantry-run/gantry/internal/controlplane/pki"
	"github.com/gantry-run/gantry/internal/leaderelect"
)

// componentStopTimeout bounds how long the API server may take to stop.
const componentStopTimeout = 20 * time.Second

// clientStopGrace bounds how long the API server's clients in this process may take to stop
// before the API server stops anyway.
const clientStopGrace = 250 * time.Millisecond

// ErrAlreadyStarted is returned by a second Start in one process: the Kubernetes components
// register process-wide state that cannot be registered twice.
var ErrAlreadyStarted = errors.New("a control plane was already started in this process")

var started atomic.Bool

// ControlPlane is the embedded control plane: New prepares its data dir, PKI and
// kubeconfigs; Start runs etcd and the Kubernetes components until its context ends.
type ControlPlane struct {
	cfg        Config
	dir        *datadir.Dir
	certs      pki.Bundle
	server     string
	kubeconfig string
	log        io.WriteCloser

	etcd       *embed.Etcd
	components []*component // in start order
	// joinEndpoints are the etcd members of the cluster a joining server joins.
	joinEndpoints []string

	ready     chan struct{}
	closeOnce sync.Once
	failOnce  sync.Once
	failed    chan struct{}
	failErr   error
	stopping  atomic.Bool
}

// component is one Kubernetes component running in its goroutine.
type component struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// New checks cfg and the ports, opens and locks the data dir, and writes the PKI and the
// kubeconfigs, so the clients' configurations are usable before Start. A refusal leaves the
// data dir untouched. Close releases the data dir of a control plane that never started.
func New(cfg Config) (cp *ControlPlane, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.WatchProgressInterval <= 0 {
		cfg.WatchProgressInterval = DefaultWatchProgressInterval
	}
	// Ports first: a refused start leaves the data dir untouched.
	if err := CheckListeners(cfg.listeners()...); err != nil {
		return nil, err
	}
	dir, err := datadir.Open(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	cfg.DataDir = dir.Path
	defer func() {
		if err != nil {
			dir.Close()
		}
	}()
	if err := checkEtcdData(etcdDataDir(dir.Path)); err != nil {
		return nil, err
	}
	cp = &ControlPlane{
		cfg:        cfg,
		dir:        dir,
		certs:      pki.Bundle{Dir: dir.Join(datadir.PKIDir)},
		server:     "https://" + net.JoinHostPort(clientHost(cfg.BindAddress), fmt.Sprint(cfg.HTTPSPort)),
		kubeconfig: dir.Join(datadir.AdminKubeconfig),
		ready:      make(chan struct{}),
		failed:     make(chan struct{}),
	}
	if cfg.Join != nil {
		// The cluster's shared keys first: Ensure then issues this server's own leaves
		// from them instead of making a CA of its own.
		if err := cp.takeBootstrap(); err != nil {
			return nil, err
		}
	}
	if err := cp.certs.Ensure(pki.Options{Hosts: servingHosts(cfg), EtcdHosts: cfg.etcdHosts()},
		pki.Admin, pki.ControllerManager, pki.Scheduler, pki.APIServerKubeletClient, pki.Gantry); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir.Path, err)
	}
	if err := writePolicy(cfg); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir.Join(datadir.KubeconfigsDir), 0o700); err != nil {
		return nil, err
	}
	for _, k := range []struct {
		client pki.Client
		path   string
	}{
		{pki.Admin, cp.kubeconfig},
		{pki.ControllerManager, cp.componentKubeconfig("controller-manager")},
		{pki.Scheduler, cp.componentKubeconfig("scheduler")},
		{pki.Gantry, cp.componentKubeconfig("gantry")},
	} {
		if err := writeKubeconfig(k.path, cp.server, cp.certs, k.client); err != nil {
			return nil, err
		}
	}
	if cp.log, err = openComponentLog(cfg.ComponentLog, dir); err != nil {
		return nil, err
	}
	return cp, nil
}

func (cp *ControlPlane) componentKubeconfig(name string) string {
	return cp.dir.Join(datadir.KubeconfigsDir, name+".yaml")
}

// Close releases the data dir of a control plane that was prepared but not started; Start
// releases it itself when it returns.
func (cp *ControlPlane) Close() {
	cp.closeOnce.Do(func() {
		if cp.log != nil {
			_ = cp.log.Close()
		}
		cp.dir.Close()
	})
}

// Ready is closed once the API server reports ready and the default namespace can take pods.
func (cp *ControlPlane) Ready() <-chan struct{} { return cp.ready }

// Start runs etcd, kube-apiserver, kube-controller-manager and kube-scheduler until ctx ends,
// then stops them in reverse order, etcd last, and releases the data dir. It returns an error
// when the API server is not ready within the configured timeout or a component fails.
func (cp *ControlPlane) Start(ctx context.Context) error {
	err := cp.start(ctx)
	if err == nil {
		select {
		case <-ctx.Done():
		case <-cp.failed:
			err = cp.failErr
		}
	}
	// Each component has a bounded time to stop; the caller bounds the whole by how long it
	// waits for Start to return.
	return errors.Join(err, cp.stop())
}

func (cp *ControlPlane) start(ctx context.Context) error {
	if !started.CompareAndSwap(false, true) {
		return ErrAlreadyStarted
	}
	readyCtx, cancel := context.WithTimeout(ctx, cp.cfg.ReadyTimeout)
	defer cancel()
	// From here on the process holds the components' process-wide state.
	if err := applyLogging(cp.log, cp.cfg.Verbosity); err != nil {
		return err
	}
	member, err := cp.member(readyCtx)
	if err != nil {
		return err
	}
	if cp.etcd, err = startEtcd(readyCtx, cp.cfg, cp.certs, cp.log, member); err != nil {
		return err
	}
	go cp.watchEtcd()
	// A learner serves no API request: the API server starts on a voting member.
	if cp.etcd.Server.IsLearner() {
		if err := cp.promote(readyCtx); err != nil {
			return err
		}
	}
	// The API server is the first component and the others are its clients: stop relies on it.
	api := cp.run("kube-apiserver", func(ctx context.Context) error {
		return runAPIServer(ctx, apiServerArgs(cp.cfg, cp.certs), cp.cfg.WatchCache)
	})
	if err := cp.waitReady(readyCtx, api); err != nil {
		return err
	}
	cp.run("kube-controller-manager", cp.elected("kube-controller-manager", pki.ControllerManager, func(ctx context.Context) error {
		return runControllerManager(ctx, controllerManagerArgs(cp.componentKubeconfig("controller-manager"), cp.certs, cp.cfg))
	}))
	cp.run("kube-scheduler", cp.elected("kube-scheduler", pki.Scheduler, func(ctx context.Context) error {
		return runScheduler(ctx, schedulerArgs(cp.componentKubeconfig("scheduler")))
	}))
	if err := cp.ensureDefaultServiceAccount(readyCtx); err != nil {
		return err
	}
	close(cp.ready)
	return nil
}

// elected is fn as a single server runs it, or, on a server of a cluster, fn run while this
// server holds the lease of that name (as identity, the component's own user).
func (cp *ControlPlane) elected(lease string, identity pki.Client, fn func(ctx context.Context) error) func(ctx context.Context) error {
	if !cp.cfg.Clustered() {
		return fn // one server per data dir (it is locked): no election
	}
	return func(ctx context.Context) error {
		return leaderelect.Run(ctx, restConfig(cp.server, cp.certs, identity), lease, fn)
	}
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
		path = dir.Join(datadir.LogsDir, "components.log")
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

// stop stops the API server's clients (the controller-manager and the scheduler) together,
// then the API server, then etcd, and releases the data dir.
//
// The clients get clientStopGrace: the controller-manager cannot be cancelled while it
// builds its controllers (its first seconds), so a stop just after start would wait for that.
// A client still running past the grace is left to fail against the stopped API server; that
// is harmless, since the API server drains the requests in flight before it stops.
func (cp *ControlPlane) stop() error {
	cp.stopping.Store(true)
	var errs []error
	if len(cp.components) > 1 {
		clients := cp.components[1:]
		for _, c := range clients {
			c.cancel()
		}
		grace, cancel := context.WithTimeout(context.Background(), clientStopGrace)
		for _, c := range clients {
			select {
			case <-c.done:
				cp.logStopped(c)
			case <-grace.Done():
				if cp.log != nil {
					fmt.Fprintf(cp.log, "gantry: %s still stopping after %s; stopping the API server under it\n", c.name, clientStopGrace)
				}
			}
		}
		cancel()
	}
	if len(cp.components) > 0 {
		api := cp.components[0]
		api.cancel()
		timer := time.NewTimer(componentStopTimeout)
		select {
		case <-api.done:
			cp.logStopped(api)
		case <-timer.C:
			errs = append(errs, fmt.Errorf("%s did not stop within %s", api.name, componentStopTimeout))
		}
		timer.Stop()
	}
	if cp.etcd != nil {
		cp.etcd.Close()
	}
	cp.Close()
	return errors.Join(errs...)
}

// logStopped notes how a stopped component ended. What a component returns once cancelled
// is how it ended, not a failure (the scheduler, for one, always says "finished without
// leader elect").
func (cp *ControlPlane) logStopped(c *component) {
	if c.err != nil && cp.log != nil {
		fmt.Fprintf(cp.log, "gantry: %s stopped: %v\n", c.name, c.err)
	}
}

// ensureDefaultServiceAccount creates the default namespace's "default" ServiceAccount at once
// instead of waiting for the controller-manager's serviceaccount controller (about 5 s after
// the API is ready): until it exists the API refuses every pod there, and a Deployment's
// ReplicaSet backs off. The controller adopts the account as its own.
func (cp *ControlPlane) ensureDefaultServiceAccount(ctx context.Context) error {
	client, err := kubernetes.NewForConfig(cp.RESTConfig())
	if err != nil {
		return err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: metav1.NamespaceDefault}}
	var last error
	err = wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, last = client.CoreV1().ServiceAccounts(sa.Namespace).Create(ctx, sa, metav1.CreateOptions{})
		// NotFound: the default namespace itself is not there yet.
		return last == nil || apierrors.IsAlreadyExists(last), nil
	})
	if err != nil {
		return fmt.Errorf("creating the default ServiceAccount: %w", errors.Join(err, last))
	}
	return nil
}
