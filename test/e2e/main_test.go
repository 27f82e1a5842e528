// Package e2e runs the gantry binary as a user would: it builds it once, starts
// "gantry server" on temporary data directories and talks to it with "gantry kubectl" and
// plain HTTP.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-run/gantry/internal/freeport"
	"github.com/gantry-run/gantry/internal/poll"
)

// gantryBin is the binary under test: $GANTRY_BIN, or one built for this run by hack/build.sh.
var gantryBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	gantryBin = os.Getenv("GANTRY_BIN")
	if gantryBin == "" {
		dir, err := os.MkdirTemp("", "gantry-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		gantryBin = filepath.Join(dir, "gantry")
		// As make build builds it: carrying the queue-proxy's own binary.
		build := exec.Command("../../hack/build.sh", gantryBin)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: building gantry: %v\n", err)
			return 1
		}
	}
	nodeSkip = nodeUnavailable()
	return m.Run()
}

// nodeSkip says why the serverless node cannot run here ("" when it can): servers then run
// with --node=false and the tests of pods skip.
var nodeSkip string

func nodeUnavailable() string {
	if os.Geteuid() != 0 {
		return "the serverless node needs root"
	}
	if _, err := exec.LookPath("runc"); err != nil {
		return "the serverless node needs runc (apt-get install runc)"
	}
	for _, dir := range []string{"/usr/lib/cni", "/opt/cni/bin"} {
		if _, err := os.Stat(filepath.Join(dir, "bridge")); err == nil {
			return ""
		}
	}
	return "the serverless node needs the CNI plugins (apt-get install containernetworking-plugins)"
}

func requireNode(t *testing.T) {
	t.Helper()
	if nodeSkip != "" {
		t.Skip(nodeSkip)
	}
}

// server is one "gantry server" process.
type server struct {
	t       *testing.T
	dataDir string
	ports   []int // https, etcd client, etcd peer, webhook, registry, kubelet, gateway
	args    []string
	// netns is the network namespace the server runs in ("" for the host's): its kubectl
	// runs there too, where its kubeconfig's address is.
	netns string
	// addr is where the host reaches the server's network listeners ("" for loopback).
	addr    string
	cmd     *exec.Cmd
	mu      sync.Mutex
	stderr  bytes.Buffer
	ready   chan struct{}
	exited  chan struct{}
	exitErr error
}

// newServerArgs returns the flags that put a server on dataDir and the given ports.
func serverArgs(dataDir string, ports []int) []string {
	return []string{"server", "--data-dir", dataDir,
		fmt.Sprintf("--https-port=%d", ports[0]),
		fmt.Sprintf("--etcd-client-port=%d", ports[1]),
		fmt.Sprintf("--etcd-peer-port=%d", ports[2]),
		fmt.Sprintf("--webhook-port=%d", ports[3]),
		fmt.Sprintf("--registry-addr=127.0.0.1:%d", ports[4]),
		fmt.Sprintf("--kubelet-port=%d", ports[5]),
		fmt.Sprintf("--http-port=%d", ports[6]),
		registryNodePortFlag(ports, 7),
		"--metrics-address=127.0.0.1:0",
		// Off the default bridge and range, which a running gantry server may use.
		"--bridge=gantry-e2e0", "--pod-cidr=10.246.0.0/16",
		fmt.Sprintf("--node=%t", nodeSkip == "")}
}

// registryNodePortFlag is --registry-node-port on ports[i], or 0 (none) when ports has no
// such port: the default, 6445, is one per host.
func registryNodePortFlag(ports []int, i int) string {
	if len(ports) > i {
		return fmt.Sprintf("--registry-node-port=%d", ports[i])
	}
	return "--registry-node-port=0"
}

// newDataDir is a fresh data directory for a server. Every directory above it lets others
// search it, as pods' user namespaces need (t.TempDir's own parent is private).
func newDataDir(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	if err := os.Chmod(filepath.Dir(tmp), 0o711); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(tmp, "data")
}

func freePorts(t *testing.T) []int {
	t.Helper()
	ports, err := freeport.Get(8)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// startServer starts gantry server, with extra flags after the usual ones, and waits for its
// ready line.
func startServer(t *testing.T, dataDir string, ports []int, extra ...string) *server {
	t.Helper()
	return startServerOn(t, dataDir, ports, "gantry-e2e0", "10.246.0.0/16", append(serverArgs(dataDir, ports), extra...))
}

// startServerOn starts gantry with args, a server whose pods use bridge and podCIDR (its
// cleanup removes them), and waits for its ready line.
func startServerOn(t *testing.T, dataDir string, ports []int, bridge, podCIDR string, args []string) *server {
	t.Helper()
	return launchServer(t, dataDir, ports, args, func() {
		// A stopped server leaves its pods' sandboxes running; the test leaves nothing.
		_ = exec.Command(gantryBin, "cleanup", "--data-dir", dataDir, "--bridge="+bridge, "--pod-cidr="+podCIDR).Run()
	})
}

// launchServer runs gantry with args (a server on dataDir and ports), waits for its ready
// line, and at the test's end kills it if it still runs, then calls after (if set).
func launchServer(t *testing.T, dataDir string, ports []int, args []string, after func()) *server {
	t.Helper()
	return launchServerIn(t, "", dataDir, ports, args, after)
}

// launchServerIn is launchServer in the network namespace netns ("" for the host's).
func launchServerIn(t *testing.T, netns, dataDir string, ports []int, args []string, after func()) *server {
	t.Helper()
	s := &server{t: t, dataDir: dataDir, ports: ports, args: args, netns: netns, ready: make(chan struct{}), exited: make(chan struct{})}
	s.cmd = inNetns(netns, gantryBin, args...)
	pipe, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go s.scan(pipe)
	t.Cleanup(func() {
		if s.running() {
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		if after != nil {
			after()
		}
	})
	select {
	case <-s.ready:
		return s
	case <-s.exited:
		t.Fatalf("gantry server exited before ready: %v\n%s", s.exitErr, s.output())
	case <-time.After(2 * time.Minute):
		t.Fatalf("gantry server not ready after 2m\n%s", s.output())
	}
	return nil
}

func (s *server) scan(r io.Reader) {
	sc := bufio.NewScanner(r)
	once := sync.Once{}
	for sc.Scan() {
		line := sc.Text()
		s.mu.Lock()
		s.stderr.WriteString(line + "\n")
		s.mu.Unlock()
		if strings.Contains(line, `msg="API server ready"`) {
			once.Do(func() { close(s.ready) })
		}
	}
	s.exitErr = s.cmd.Wait()
	close(s.exited)
}

func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

func (s *server) running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// kill ends the server with SIGKILL, as a crash would.
func (s *server) kill() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatal(err)
	}
	<-s.exited
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatal(err)
	}
	select {
	case <-s.exited:
	case <-time.After(90 * time.Second):
		s.t.Fatalf("gantry server did not stop within 90s\n%s", s.output())
	}
	if s.exitErr != nil {
		s.t.Fatalf("gantry server exited with %v after SIGTERM\n%s", s.exitErr, s.output())
	}
	if !strings.Contains(s.output(), `msg=stopped`) {
		s.t.Errorf("no stopped line after SIGTERM\n%s", s.output())
	}
}

// kubectl runs "gantry kubectl args..." against the server's data dir.
func (s *server) kubectl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := inNetns(s.netns, gantryBin, append([]string{"kubectl"}, args...)...)
	cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	cmd.Env = append(os.Environ(), "GANTRY_DATA_DIR="+s.dataDir, "KUBECONFIG=")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("gantry kubectl %s: %w\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

func (s *server) mustKubectl(args ...string) string {
	s.t.Helper()
	out, err := s.kubectl(args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// eventually retries kubectl until check accepts its output.
func (s *server) eventually(what string, check func(out string) bool, args ...string) string {
	s.t.Helper()
	var out string
	poll.Until(s.t, what, 60*time.Second, func(context.Context) (bool, error) {
		var err error
		out, err = s.kubectl(args...)
		if err == nil && check(out) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("last output %q: %w", out, err)
		}
		return false, fmt.Errorf("last output %q", out)
	})
	return out
}

// inNetns is the command bin args, run in the network namespace netns ("" for the host's).
func inNetns(netns, bin string, args ...string) *exec.Cmd {
	if netns == "" {
		return exec.Command(bin, args...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", netns, bin}, args...)...)
}
