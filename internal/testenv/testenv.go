// Package testenv gives a test package one real Gantry: TestMain calls Main, which starts the
// standalone composition (embedded etcd, kube-apiserver, controller-manager and scheduler, the
// image registry, and the serving CRDs, webhook and controllers) in a temporary data directory
// on free loopback ports, runs the tests, and stops it. Tests reach it through Get.
//
// Only integration test packages import this package: it links the whole control plane.
package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/controlplane"
	"github.com/gantry-run/gantry/internal/freeport"
	"github.com/gantry-run/gantry/internal/image/imagetest"
	"github.com/gantry-run/gantry/internal/podnet"
	"github.com/gantry-run/gantry/internal/serving"
	"github.com/gantry-run/gantry/internal/standalone"
)

// Env is the running control plane as tests see it.
type Env struct {
	// Config is an admin client configuration.
	Config *rest.Config
	// Client is an admin clientset.
	Client kubernetes.Interface
	// Ctrl is an admin controller-runtime client that knows serving.knative.dev/v1.
	Ctrl client.Client
	// ControlPlane is the running control plane.
	ControlPlane *controlplane.ControlPlane
	// Server is the whole standalone composition.
	Server *standalone.Server
	// RegistryHost is the embedded registry's host:port.
	RegistryHost string
	// GatewayAddr is where the gateway serves Routes (host:port); send the Route's host.
	GatewayAddr string
	// DataDir is the control plane's data directory.
	DataDir string
	// PodCIDR is the node's pod range.
	PodCIDR string
}

var (
	env *Env
	// nodeSkip says why the serverless node does not run, when it does not.
	nodeSkip string
)

// nodeAvailable reports whether the serverless node can run here: it needs root, runc and the
// CNI plugins (hack/install-deps.sh installs them).
func nodeAvailable() (bool, string) {
	if os.Geteuid() != 0 {
		return false, "the serverless node needs root"
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return false, "the serverless node needs runc (apt-get install runc)"
	}
	for _, dir := range []string{"/usr/lib/cni", "/opt/cni/bin"} {
		if _, err := os.Stat(filepath.Join(dir, "bridge")); err == nil {
			return true, ""
		}
	}
	return false, "the serverless node needs the CNI plugins (apt-get install containernetworking-plugins)"
}

// queueProxyBinary is the queue-proxy's own binary (cmd/gantry-queue-proxy), as gantry
// carries it, built from this source tree (as the in-process server is) into a directory of
// its own beside the data dir. $GANTRY_BIN plays no part here: tests read it to run the gantry
// binary itself (kubectl, e2e servers).
func queueProxyBinary(dataDir string) (string, error) {
	bin := dataDir + "-bin"
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return "", err
	}
	bin = filepath.Join(bin, "queue-proxy")
	build := exec.Command("go", "build", "-o", bin, "github.com/gantry-run/gantry/cmd/gantry-queue-proxy")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the node's queue-proxy: %w\n%s", err, out)
	}
	return bin, nil
}

// NodeRuns reports whether the serverless node runs pods in this environment.
func NodeRuns() bool { return nodeSkip == "" }

// RequireNode skips the test when the serverless node does not run here, saying why.
func RequireNode(t testing.TB) {
	t.Helper()
	if nodeSkip != "" {
		t.Skip(nodeSkip)
	}
}

// Main starts the control plane, runs m and exits with its result. Set GANTRY_TESTENV_KEEP=1
// to keep the data directory (with logs/components.log) after the run.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gantry-testenv-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return 1
	}
	keep := os.Getenv("GANTRY_TESTENV_KEEP") != ""
	defer func() {
		if keep {
			fmt.Fprintf(os.Stderr, "testenv: data dir kept at %s\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
		_ = os.RemoveAll(dir + "-bin")
	}()
	cfg, err := Config(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg.Node, nodeSkip = nodeAvailable()
	if cfg.Node {
		// The node runs queue-proxies from a binary of their own, which a test binary is not.
		if cfg.QueueProxyBinary, err = queueProxyBinary(dir); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
			return 1
		}
	}
	srv, err := standalone.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: starting gantry: %v (component log: %s/logs/components.log)\n", err, dir)
		keep = true
		return 1
	}
	cp := srv.ControlPlane
	clientset, err := kubernetes.NewForConfig(cp.RESTConfig())
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return 1
	}
	ctrlClient, err := client.New(cp.RESTConfig(), client.Options{Scheme: serving.Scheme()})
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return 1
	}
	env = &Env{Config: cp.RESTConfig(), Client: clientset, Ctrl: ctrlClient, ControlPlane: cp, Server: srv,
		RegistryHost: srv.Registry.Addr(), DataDir: cp.DataDir(), GatewayAddr: srv.Gateway.Addrs()[0], PodCIDR: cfg.PodCIDR}

	code := m.Run()

	stopCtx, stopCancel := context.WithTimeout(context.Background(), time.Minute)
	defer stopCancel()
	if err := srv.Stop(stopCtx); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: stopping gantry: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	// A stopped server leaves its sandboxes for the next start; tests leave nothing: nor the
	// pod isolation rules, which every packet on the host would go on passing through.
	if srv.Sandboxes != nil {
		_, err := srv.Sandboxes.RemoveAll(stopCtx, time.Second)
		if err == nil {
			err = podnet.RemoveRules(stopCtx, cfg.Bridge)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "testenv: removing sandboxes and pod isolation rules: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	if code != 0 {
		keep = true
	}
	return code
}

var (
	imagesMu sync.Mutex
	images   = map[string]string{}
)

// Image builds test/images/<name>, pushes it to the embedded registry once per test binary,
// and returns its tag reference in that registry.
func (e *Env) Image(t testing.TB, name string) string {
	t.Helper()
	imagesMu.Lock()
	defer imagesMu.Unlock()
	if ref, ok := images[name]; ok {
		return ref
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ref, err := imagetest.Push(ctx, e.RegistryHost, name)
	if err != nil {
		t.Fatal(err)
	}
	images[name] = ref
	return ref
}

// Get returns the package's control plane; it fails the test if TestMain did not call Main.
func Get(t testing.TB) *Env {
	t.Helper()
	if env == nil {
		t.Fatal("testenv: no control plane: the package's TestMain must call testenv.Main(m)")
	}
	return env
}

// Config is a standalone configuration in dataDir on free loopback ports.
func Config(dataDir string) (standalone.Config, error) {
	ports, err := freeport.Get(8)
	if err != nil {
		return standalone.Config{}, err
	}
	cfg := standalone.DefaultConfig()
	cp := &cfg.ControlPlane
	cp.DataDir = dataDir
	cp.HTTPSPort, cp.EtcdClientPort, cp.EtcdPeerPort = ports[0], ports[1], ports[2]
	// Quiet watches learn the current revision within seconds (TestQuietWatchGetsBookmarks).
	cp.WatchProgressInterval = 2 * time.Second
	cfg.WebhookPort = ports[3]
	cfg.RegistryAddr = fmt.Sprintf("127.0.0.1:%d", ports[4])
	cfg.KubeletPort = ports[5]
	cfg.HTTPPort = ports[6]
	cfg.RegistryNodePort = ports[7]
	// Metrics on a port the kernel picks.
	cfg.MetricsAddress = "127.0.0.1:0"
	// A shallow activator queue, so overload tests reach it quickly.
	cfg.ActivatorQueueDepth = 200
	// GANTRY_TEST_ALLOW_HOST_USERS=1 lets pods run in the host's user namespace, for
	// benchmarks that compare pods with and without their own (bench/pods).
	cfg.AllowHostUsers = os.Getenv("GANTRY_TEST_ALLOW_HOST_USERS") == "1"
	// Tests keep off the default bridge and range, which a running gantry server may use.
	// GANTRY_TEST_BRIDGE and GANTRY_TEST_POD_CIDR move them, so that two test runs on one
	// machine (two packages, or two people) do not refuse each other.
	cfg.Bridge, cfg.PodCIDR = "gantry-test0", "10.245.0.0/16"
	if b := os.Getenv("GANTRY_TEST_BRIDGE"); b != "" {
		cfg.Bridge = b
	}
	if c := os.Getenv("GANTRY_TEST_POD_CIDR"); c != "" {
		cfg.PodCIDR = c
	}
	return cfg, nil
}
