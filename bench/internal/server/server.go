// Package server runs gantry server for a benchmark: one process on its own data dir, free
// ports, pod bridge and pod range, ready once it logs that its API server is ready, and
// stopped with the node's leftovers (bridge, routes, sandboxes) cleaned up.
package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gantry-run/gantry/internal/freeport"
)

// readyLine is what gantry server logs once every part is up.
const readyLine = `msg="API server ready"`

// Options say which binary to run and where.
type Options struct {
	// Bin is the gantry binary.
	Bin string
	// DataDir is the server's --data-dir; the caller creates and removes it.
	DataDir string
	// Bridge and PodCIDR are the node's pod network, off the defaults and off every other
	// benchmark's and test's, so runs do not collide.
	Bridge, PodCIDR string
	// Profiling serves pprof beside the metrics (--profiling).
	Profiling bool
	// NoMetrics serves no metrics (--metrics-address ""), which leaves the server's parts
	// without a registry: they observe nothing. Otherwise the metrics are served on a port
	// the kernel picks (MetricsAddr).
	NoMetrics bool
	// KubeProxy is --kube-proxy; empty leaves the server's default ("auto").
	KubeProxy string
	// Args are more flags for gantry server, after the others.
	Args []string
}

// Server is one running gantry server process.
type Server struct {
	opts Options
	// Cmd is the process.
	Cmd *exec.Cmd
	// RegistryPort is the image registry's port on 127.0.0.1; RegistryNodePort where nodes
	// read it (on the API server's address); HTTPPort the gateway's; HTTPSPort the API
	// server's.
	RegistryPort, RegistryNodePort, HTTPPort, HTTPSPort int
	exited                                              chan struct{}

	mu          sync.Mutex
	log         bytes.Buffer
	metricsAddr string
}

// Start starts gantry server and returns once it is ready, or its log when it fails.
func Start(ctx context.Context, opts Options) (*Server, error) {
	ports, err := freeport.Get(8)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, RegistryPort: ports[4], RegistryNodePort: ports[7], HTTPPort: ports[6], HTTPSPort: ports[0], exited: make(chan struct{})}
	metrics := "127.0.0.1:0"
	if opts.NoMetrics {
		metrics = ""
	}
	args := []string{"server", "--data-dir", opts.DataDir,
		fmt.Sprintf("--https-port=%d", ports[0]),
		fmt.Sprintf("--etcd-client-port=%d", ports[1]),
		fmt.Sprintf("--etcd-peer-port=%d", ports[2]),
		fmt.Sprintf("--webhook-port=%d", ports[3]),
		fmt.Sprintf("--registry-addr=127.0.0.1:%d", ports[4]),
		fmt.Sprintf("--kubelet-port=%d", ports[5]),
		fmt.Sprintf("--http-port=%d", ports[6]),
		fmt.Sprintf("--registry-node-port=%d", ports[7]),
		"--metrics-address=" + metrics, fmt.Sprintf("--profiling=%t", opts.Profiling),
		"--bridge=" + opts.Bridge, "--pod-cidr=" + opts.PodCIDR}
	if opts.KubeProxy != "" {
		args = append(args, "--kube-proxy="+opts.KubeProxy)
	}
	args = append(args, opts.Args...)
	s.Cmd = exec.Command(opts.Bin, args...)
	stderr, err := s.Cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := s.Cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	go s.scan(stderr, ready)
	select {
	case <-ready:
		return s, nil
	case <-s.exited:
		_ = s.Cleanup()
		return nil, fmt.Errorf("gantry server exited before ready: %v\n%s", s.Cmd.ProcessState, s.Output())
	case <-time.After(2 * time.Minute):
		return nil, errors.Join(errors.New("gantry server not ready after 2m"), s.Stop())
	case <-ctx.Done():
		return nil, errors.Join(ctx.Err(), s.Stop())
	}
}

func (s *Server) scan(r io.Reader, ready chan struct{}) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	var once sync.Once
	for sc.Scan() {
		line := sc.Text()
		s.mu.Lock()
		s.log.WriteString(line + "\n")
		if strings.Contains(line, `msg="metrics serving"`) {
			if _, addr, ok := strings.Cut(line, " addr="); ok {
				s.metricsAddr = strings.Fields(addr)[0]
			}
		}
		s.mu.Unlock()
		if strings.Contains(line, readyLine) {
			once.Do(func() { close(ready) })
		}
	}
	_ = s.Cmd.Wait()
	close(s.exited)
}

// Kubeconfig is the path of the admin kubeconfig the server writes in its data dir.
func (s *Server) Kubeconfig() string { return filepath.Join(s.opts.DataDir, "kubeconfig.yaml") }

// MetricsAddr is the host:port of the server's metrics (and, with Profiling, pprof); empty
// with NoMetrics.
func (s *Server) MetricsAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.metricsAddr
}

// Exited is closed once the process has ended.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// Output is everything the server has logged so far.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// BuildImage builds the image in dir with `gantry image build` and pushes it to the server's
// registry as name; it returns the reference pods use.
func (s *Server) BuildImage(ctx context.Context, dir, name string) (string, error) {
	ref := fmt.Sprintf("127.0.0.1:%d/%s", s.RegistryPort, name)
	if out, err := exec.CommandContext(ctx, s.opts.Bin, "image", "build", dir, ref).CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the %s image: %w\n%s", name, err, out)
	}
	return ref, nil
}

// Stop ends the server with SIGTERM (SIGKILL after a minute) and removes what its pods left.
func (s *Server) Stop() error {
	_ = s.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(time.Minute):
		_ = s.Cmd.Process.Kill()
		<-s.exited
	}
	return s.Cleanup()
}

// Cleanup runs `gantry cleanup` on the server's data dir, bridge and pod range.
func (s *Server) Cleanup() error {
	out, err := exec.Command(s.opts.Bin, "cleanup", "--data-dir", s.opts.DataDir, "--bridge="+s.opts.Bridge, "--pod-cidr="+s.opts.PodCIDR).CombinedOutput()
	if err != nil {
		return fmt.Errorf("gantry cleanup: %w\n%s", err, out)
	}
	return nil
}

// TempDir makes a temporary directory for servers' data dirs: one that pods' user
// namespaces can pass through (0711), as they must through every directory above a data dir.
// The caller removes it.
func TempDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}
