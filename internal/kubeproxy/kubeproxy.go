// Package kubeproxy runs Kubernetes' own kube-proxy (k8s.io/kubernetes/cmd/kube-proxy/app)
// inside gantry server's process, in nftables mode, so that a Service's ClusterIP reaches its
// endpoints from pods and from the host, as k3s runs it in its agent.
//
// kube-proxy keeps host-wide state: one nftables table, "kube-proxy", per network namespace,
// which it rewrites whole. Two kube-proxies on one host would erase each other's Services, so
// a host lock (LockPath) lets one gantry server at a time run it; Options.Required says
// whether another holding it is an error or a warning.
//
// kube-proxy cannot be stopped: its informers and sync loop run on wait.NeverStop. It reaches
// the API server through a relay of this package, which Start closes when its context ends, so
// kube-proxy's watches end before the API server stops; kube-proxy keeps the rules it last
// wrote, which the pods (which outlive gantry server) go on using, until the process exits. Like the control plane, it runs once
// per process. It also ends the process itself, as it does on every node, when the Node it
// runs for is deleted or its addresses change (it expects its supervisor to restart it).
package kubeproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	proxyapp "k8s.io/kubernetes/cmd/kube-proxy/app"
	proxymetrics "k8s.io/kubernetes/pkg/proxy/metrics"

	"github.com/gantry-run/gantry/internal/atomicfile"
	"github.com/gantry-run/gantry/internal/podnet"
)

// DefaultLockPath is the host-wide lock of the kube-proxy that owns this host's rules.
const DefaultLockPath = "/run/gantry/kube-proxy.lock"

// LockPathForThisNetns is the lock of the kube-proxy that owns the rules of this process's
// network namespace: DefaultLockPath in the host's (that of process 1 or, when that cannot be
// read, the kernel's initial one), a lock of the namespace's own in another (an agent on a
// "machine" that is a network namespace: its rules are its own).
func LockPathForThisNetns() string {
	self, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return DefaultLockPath
	}
	st, ok := self.Sys().(*syscall.Stat_t)
	if !ok {
		return DefaultLockPath
	}
	if host, err := os.Stat("/proc/1/ns/net"); err == nil {
		if os.SameFile(self, host) {
			return DefaultLockPath
		}
	} else if st.Ino == initNetnsIno {
		return DefaultLockPath
	}
	return filepath.Join(filepath.Dir(DefaultLockPath), "kube-proxy-netns-"+strconv.FormatUint(st.Ino, 10)+".lock")
}

// initNetnsIno is the inode of the kernel's initial network namespace (PROC_NET_INIT_INO).
const initNetnsIno = 0xEFFFFFF9

// DefaultMetricsAddr is where kube-proxy serves its metrics, on loopback, as it does by
// default; its validation requires an address.
const DefaultMetricsAddr = "127.0.0.1:10249"

// readyTimeout bounds the wait for kube-proxy's first complete write of the rules.
const readyTimeout = time.Minute

// ErrAlreadyStarted is returned by a second Start in one process: kube-proxy registers
// process-wide state and cannot be stopped.
var ErrAlreadyStarted = errors.New("kube-proxy was already started in this process")

var started atomic.Bool

// held are the host locks this process holds, open for the process's life: were one
// collected, its finalizer would close it and release the lock.
var (
	heldMu sync.Mutex
	held   = map[string]*os.File{}
)

// Options configure kube-proxy.
type Options struct {
	// RESTConfig is the identity kube-proxy acts as; it lists Services, EndpointSlices and
	// its Node and records events.
	RESTConfig *rest.Config
	// Kubeconfig is where the kubeconfig kube-proxy reads is written (kube-proxy takes a
	// file, not a rest.Config).
	Kubeconfig string
	// NodeName is the Node kube-proxy runs for (the serverless node): it must be registered
	// with its addresses before Start.
	NodeName string
	// ClusterCIDR is the pods' range: traffic from it to a ClusterIP is not masqueraded.
	ClusterCIDR string
	// MetricsAddr is kube-proxy's metrics server; default DefaultMetricsAddr.
	MetricsAddr string
	// LockPath is the host-wide lock; default DefaultLockPath.
	LockPath string
	// DataDir is the data directory of the server or agent that runs kube-proxy. The lock
	// records it, so that "gantry cleanup" of that data directory knows the host's rules are
	// its own to remove (RemoveLeftovers).
	DataDir string
	// Required makes another process holding the lock an error; otherwise this server runs
	// without kube-proxy, says so, and its ClusterIPs are not routed.
	Required bool
	// Logger receives this package's logs; kube-proxy logs through klog.
	Logger *slog.Logger
}

// Proxy is kube-proxy as a part of gantry server.
type Proxy struct {
	opts    Options
	log     *slog.Logger
	ready   chan struct{}
	running atomic.Bool
}

// New checks opts; nothing starts before Start.
func New(opts Options) (*Proxy, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MetricsAddr == "" {
		opts.MetricsAddr = DefaultMetricsAddr
	}
	if opts.LockPath == "" {
		opts.LockPath = DefaultLockPath
	}
	var errs []error
	if opts.RESTConfig == nil || opts.Kubeconfig == "" {
		errs = append(errs, errors.New("kube-proxy: a REST config and a kubeconfig path are required"))
	}
	if opts.NodeName == "" {
		errs = append(errs, errors.New("kube-proxy: the node name is required"))
	}
	if _, _, err := net.ParseCIDR(opts.ClusterCIDR); err != nil {
		errs = append(errs, fmt.Errorf("kube-proxy: cluster CIDR %q: %w", opts.ClusterCIDR, err))
	}
	if _, _, err := net.SplitHostPort(opts.MetricsAddr); err != nil {
		errs = append(errs, fmt.Errorf("kube-proxy: metrics address %q: %w", opts.MetricsAddr, err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Proxy{opts: opts, log: opts.Logger.With("component", "kube-proxy"), ready: make(chan struct{})}, nil
}

// Ready is closed once kube-proxy has written the rules for every Service, or once this
// server has decided to run without it.
func (p *Proxy) Ready() <-chan struct{} { return p.ready }

// Running reports whether kube-proxy runs in this process (after Ready).
func (p *Proxy) Running() bool { return p.running.Load() }

// Start takes the host lock, starts kube-proxy and returns once ctx ends; it is ready once
// the first sync of the rules is done. Without the lock it fails when Options.Required, and
// otherwise warns and waits for ctx. Its errors do not say "kube-proxy": the server's group
// names the part.
func (p *Proxy) Start(ctx context.Context) error {
	holder, err := lock(p.opts.LockPath, p.opts.DataDir)
	if err != nil {
		if !errors.Is(err, errLocked) {
			return err
		}
		if p.opts.Required {
			return fmt.Errorf("another gantry server on this host runs kube-proxy (%s holds %s), and its rules are one per host: stop it, or start this server with --kube-proxy=auto to run without", holder, p.opts.LockPath)
		}
		p.log.Warn("kube-proxy is not running: another gantry server on this host runs it, and its rules are one per host; this server's ClusterIPs are not routed",
			"lock", p.opts.LockPath, "holder", holder)
		close(p.ready)
		<-ctx.Done()
		return nil
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return fmt.Errorf("nftables mode needs the nft binary (apt-get install nftables; hack/install-deps.sh installs it): %w", err)
	}
	if !started.CompareAndSwap(false, true) {
		return ErrAlreadyStarted
	}
	server, err := url.Parse(p.opts.RESTConfig.Host)
	if err != nil || server.Host == "" {
		return fmt.Errorf("API server URL %q: not a URL", p.opts.RESTConfig.Host)
	}
	target := server.Host
	if server.Port() == "" {
		target = net.JoinHostPort(server.Hostname(), "443")
	}
	api, err := newRelay(target)
	if err != nil {
		return fmt.Errorf("relay to the API server: %w", err)
	}
	defer api.Close()
	if err := writeKubeconfig(p.opts.Kubeconfig, p.opts.RESTConfig, "https://"+api.Addr(), server.Hostname()); err != nil {
		return err
	}
	opts, err := p.options()
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- opts.Run(ctx) }()

	if err := p.waitSynced(ctx, errc); err != nil {
		return err
	}
	p.running.Store(true)
	close(p.ready)
	p.log.Info("kube-proxy serving Services", "mode", "nftables", "clusterCIDR", p.opts.ClusterCIDR)
	select {
	case <-ctx.Done():
		// kube-proxy's sync loop and informers run on until the process exits, with the
		// rules they last wrote; closing the relay cuts their watches.
		return nil
	case err := <-errc:
		return errOrExited(err)
	}
}

// args are kube-proxy's flags: nftables mode for the serverless node, no healthz server (the
// server's readiness is kube-proxy's first sync), and the host's conntrack settings and this
// process's OOM score left as they are (kube-proxy would otherwise tune both for a node it
// owns).
func (p *Proxy) args() []string {
	masqueradeAll := !podnet.BridgeNetfilterOn()
	if masqueradeAll {
		p.log.Warn("bridged traffic does not pass netfilter: masquerading all Service traffic", "sysctl", podnet.BridgeNetfilterSysctl)
	}
	return []string{
		"--kubeconfig=" + p.opts.Kubeconfig,
		"--hostname-override=" + p.opts.NodeName,
		"--proxy-mode=nftables",
		"--cluster-cidr=" + p.opts.ClusterCIDR,
		"--detect-local-mode=ClusterCIDR",
		"--masquerade-all=" + strconv.FormatBool(masqueradeAll),
		"--healthz-port=0",
		"--metrics-bind-address=" + p.opts.MetricsAddr,
		"--oom-score-adj=" + strconv.Itoa(oomScoreAdj()),
		"--conntrack-max-per-core=0",
		"--conntrack-tcp-timeout-established=0",
		"--conntrack-tcp-timeout-close-wait=0",
	}
}

// options builds kube-proxy's options as its command would from args, without the command:
// the command applies the logging configuration (the control plane's, applied once per
// process) and runs with a context of its own that nothing cancels.
func (p *Proxy) options() (*proxyapp.Options, error) {
	opts := proxyapp.NewOptions()
	fs := pflag.NewFlagSet("kube-proxy", pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // deprecation notes of --healthz-port
	opts.AddFlags(fs)
	if err := fs.Parse(p.args()); err != nil {
		return nil, fmt.Errorf("flags: %w", err)
	}
	if err := opts.Complete(fs); err != nil {
		return nil, fmt.Errorf("completing the options: %w", err)
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("options: %w", err)
	}
	return opts, nil
}

// waitSynced waits for kube-proxy's first successful write of the rules, which it makes once
// it has seen every Service and EndpointSlice; kube-proxy's own metric says when.
func (p *Proxy) waitSynced(ctx context.Context, errc <-chan error) error {
	family := corev1.IPv4Protocol
	if ip, _, _ := net.ParseCIDR(p.opts.ClusterCIDR); ip.To4() == nil {
		family = corev1.IPv6Protocol
	}
	timeout := time.NewTimer(readyTimeout)
	defer timeout.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if lastSync(family) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return errOrExited(err)
		case <-timeout.C:
			return fmt.Errorf("no rules written within %s (see the component log)", readyTimeout)
		case <-tick.C:
		}
	}
}

// lastSync is when kube-proxy last wrote the rules of family, in Unix seconds; 0 before the
// first time.
func lastSync(family corev1.IPFamily) float64 {
	m := &dto.Metric{}
	if err := proxymetrics.SyncProxyRulesLastTimestamp.WithLabelValues(string(family)).Write(m); err != nil {
		return 0
	}
	return m.GetGauge().GetValue()
}

func errOrExited(err error) error {
	if err == nil {
		return errors.New("exited")
	}
	return err
}

// oomScoreAdj is this process's OOM score adjustment, which kube-proxy then keeps.
func oomScoreAdj() int {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return n
}

// writeKubeconfig writes a kubeconfig with cfg's credentials for the API server at server,
// whose certificate names serverName.
func writeKubeconfig(path string, cfg *rest.Config, server, serverName string) error {
	k := clientcmdapi.NewConfig()
	k.Clusters["gantry"] = &clientcmdapi.Cluster{
		Server: server, TLSServerName: serverName,
		CertificateAuthority: cfg.CAFile, CertificateAuthorityData: cfg.CAData,
	}
	k.AuthInfos["kube-proxy"] = &clientcmdapi.AuthInfo{
		ClientCertificate: cfg.CertFile, ClientKey: cfg.KeyFile,
		ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken,
	}
	k.Contexts["gantry"] = &clientcmdapi.Context{Cluster: "gantry", AuthInfo: "kube-proxy"}
	k.CurrentContext = "gantry"
	data, err := clientcmd.Write(*k)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}

// errLocked means another process holds the lock.
var errLocked = errors.New("the lock is held")

// lock takes the host lock at path for the rest of the process's life (kube-proxy cannot be
// stopped; the kernel releases the lock when the process ends, however it ends) and writes
// this process and its data directory into it, where they stay after it ends; taking it
// again is a no-op. When another process holds it, it returns errLocked and what the file
// says of the holder.
func lock(path, dataDir string) (holder string, err error) {
	heldMu.Lock()
	defer heldMu.Unlock()
	if held[path] != nil {
		return "", nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := io.ReadAll(io.LimitReader(f, 256))
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return strings.TrimSpace(string(b)), errLocked
		}
		return "", fmt.Errorf("locking %s: %w", path, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(holderLine(os.Getpid(), dataDir)), 0)
	held[path] = f
	return "", nil
}

// holderLine is what a lock says of its holder: its process and, when known, its data
// directory.
func holderLine(pid int, dataDir string) string {
	line := "pid " + strconv.Itoa(pid)
	if dataDir != "" {
		line += " " + dataDirField + dataDir
	}
	return line + "\n"
}

const dataDirField = "data-dir "

// removeTables is podnet.RemoveTables; tests, which must not touch the host's rules, replace it.
var removeTables = podnet.RemoveTables

// Tables are the nftables tables kube-proxy writes in each network namespace it runs for.
var Tables = []string{"ip kube-proxy", "ip6 kube-proxy"}

// RemoveLeftovers removes the rules a kube-proxy that ran for dataDir left in this network
// namespace, as "kube-proxy --cleanup" does, when nothing runs kube-proxy any more (the lock at
// lockPath is free) and the last one to run it was dataDir's (the lock says so). The rules
// stay when another process holds the lock, or when another data directory's server or agent
// wrote them last: they may still route its pods. It says what it did or why it did nothing.
func RemoveLeftovers(ctx context.Context, lockPath, dataDir string) (string, error) {
	f, err := os.OpenFile(lockPath, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return "no kube-proxy ran on this host (no " + lockPath + ")", nil
	}
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }() // releases the lock
	lockErr := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	// Read once the lock is taken (or found held), so that what it says is current.
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", lockPath, err)
	}
	holder := strings.TrimSpace(string(b))
	if lockErr != nil {
		if errors.Is(lockErr, syscall.EWOULDBLOCK) {
			return fmt.Sprintf("kube-proxy's rules left in place: a running gantry (%s) holds %s", holder, lockPath), nil
		}
		return "", fmt.Errorf("locking %s: %w", lockPath, lockErr)
	}
	if holder == "" {
		return "no kube-proxy rules to remove: an earlier cleanup removed them", nil
	}
	_, owner, _ := strings.Cut(holder, " "+dataDirField)
	if owner != dataDir {
		if owner == "" {
			owner = "unknown"
		}
		return fmt.Sprintf("kube-proxy's rules left in place: the last to write them was not %s (data dir: %s)", dataDir, owner), nil
	}
	if err := removeTables(ctx, Tables...); err != nil {
		return "", fmt.Errorf("removing kube-proxy's rules: %w", err)
	}
	if err := f.Truncate(0); err != nil { // what it named is gone
		return "", err
	}
	return "removed kube-proxy's rules (nftables tables " + strings.Join(Tables, ", ") + ")", nil
}
