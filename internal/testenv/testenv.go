// Package testenv gives a test package one real control plane: TestMain calls Main, which
// starts the embedded etcd, kube-apiserver, controller-manager and scheduler in a temporary
// data directory, runs the tests, and stops it. Tests reach it through Get.
//
// Only integration test packages import this package: it links the whole control plane.
package testenv

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/gantry-run/gantry/internal/controlplane"
	"github.com/gantry-run/gantry/internal/freeport"
)

// Env is the running control plane as tests see it.
type Env struct {
	// Config is an admin client configuration.
	Config *rest.Config
	// Client is an admin clientset.
	Client kubernetes.Interface
	// ControlPlane is the running control plane.
	ControlPlane *controlplane.ControlPlane
	// DataDir is the control plane's data directory.
	DataDir string
}

var env *Env

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
	}()
	cfg, err := Config(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cp, err := controlplane.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: starting control plane: %v (component log: %s/logs/components.log)\n", err, dir)
		keep = true
		return 1
	}
	client, err := kubernetes.NewForConfig(cp.RESTConfig())
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return 1
	}
	env = &Env{Config: cp.RESTConfig(), Client: client, ControlPlane: cp, DataDir: cp.DataDir()}

	code := m.Run()

	stopCtx, stopCancel := context.WithTimeout(context.Background(), time.Minute)
	defer stopCancel()
	if err := cp.Stop(stopCtx); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: stopping control plane: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	if code != 0 {
		keep = true
	}
	return code
}

// Get returns the package's control plane; it fails the test if TestMain did not call Main.
func Get(t testing.TB) *Env {
	t.Helper()
	if env == nil {
		t.Fatal("testenv: no control plane: the package's TestMain must call testenv.Main(m)")
	}
	return env
}

// Config is a control plane configuration in dataDir on free loopback ports.
func Config(dataDir string) (controlplane.Config, error) {
	ports, err := freeport.Get(3)
	if err != nil {
		return controlplane.Config{}, err
	}
	cfg := controlplane.DefaultConfig()
	cfg.DataDir = dataDir
	cfg.HTTPSPort, cfg.EtcdClientPort, cfg.EtcdPeerPort = ports[0], ports[1], ports[2]
	return cfg, nil
}
