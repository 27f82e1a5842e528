package sandbox

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-run/gantry/internal/poll"
)

var (
	layerOnce sync.Once
	layerDir  string
	layerErr  error
	netSeq    atomic.Int32
)

// testLayer builds the test programs (hello, runtime, autoscale and probe-sec from
// test/images and the probe from testdata) as static binaries into one image layer directory, once per run.
func testLayer(t *testing.T) string {
	t.Helper()
	layerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sandbox-layer-")
		if err != nil {
			layerErr = err
			return
		}
		layerDir = dir
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", dir+"/",
			"./testdata/probe", "../../test/images/hello", "../../test/images/runtime", "../../test/images/autoscale",
			"../../test/images/probe-sec")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			layerErr = fmt.Errorf("go build: %w: %s", err, out)
		}
	})
	if layerErr != nil {
		t.Fatalf("building the test layer: %v", layerErr)
	}
	return layerDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if layerDir != "" {
		os.RemoveAll(layerDir)
	}
	os.Exit(code)
}

// requireSandboxes skips the test only when sandboxes truly cannot run here.
func requireSandboxes(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("sandbox tests need root (namespaces, mounts, cgroups, CNI)")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("sandbox tests need runc (apt-get install runc)")
	}
	if findPlugin(DefaultCNIBinDirs, "bridge") == "" {
		t.Skip("sandbox tests need the CNI plugins (apt-get install containernetworking-plugins)")
	}
}

// testOptions gives each manager its own root, bridge and /24, so tests never touch the
// default gantry0 network or each other's.
func testOptions(t *testing.T) Options {
	t.Helper()
	n := (int(netSeq.Add(1)) + os.Getpid()) % 200
	bridge := fmt.Sprintf("gtest%d", n)
	parent := fmt.Sprintf("gantrytest%d", n)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", bridge).Run() //nolint:errcheck // gone already is fine
		if cg, err := findCgroupRoots(); err == nil {
			cg.remove("/" + parent) //nolint:errcheck // best effort
		}
	})
	// t.TempDir's directories are private; pods with user namespaces must reach theirs.
	root := t.TempDir()
	for d := root; d != os.TempDir(); d = filepath.Dir(d) {
		if err := MakeSearchable(d); err != nil {
			t.Fatal(err)
		}
	}
	return Options{
		Root:         root,
		Bridge:       bridge,
		PodCIDR:      fmt.Sprintf("10.251.%d.0/24", n),
		CgroupParent: parent,
	}
}

func newTestManager(t *testing.T, opts Options) *Manager {
	t.Helper()
	requireSandboxes(t)
	m, err := NewManager(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// createPod creates a sandbox and removes it when the test ends.
func createPod(t *testing.T, m *Manager, spec PodSpec) *Sandbox {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sb, err := m.CreateSandbox(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.RemoveSandbox(context.Background(), spec.ID); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return sb
}

func startContainer(t *testing.T, m *Manager, id string, c ContainerSpec) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.StartContainer(ctx, id, c); err != nil {
		t.Fatal(err)
	}
}

// get polls url until it answers 200 or timeout passes, and returns the body.
func get(t *testing.T, url string, timeout time.Duration) string {
	t.Helper()
	body, err := getOK(url, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// getOK fetches url until it answers 200 or timeout passes (one try when timeout is 0).
func getOK(url string, timeout time.Duration) (string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	var body string
	err := poll.Wait(context.Background(), timeout, func(context.Context) (bool, error) {
		// Each try gets the client's own timeout, even the single try of a zero timeout.
		resp, err := c.Get(url)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("status %d, %w", resp.StatusCode, err)
		}
		body = string(b)
		return true, nil
	})
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	return body, nil
}

// waitExited polls ContainerStatus until the container is no longer running.
func waitExited(t *testing.T, m *Manager, id, name string, timeout time.Duration) ContainerStatus {
	t.Helper()
	var st ContainerStatus
	poll.Until(t, "container "+name+" to exit", timeout, func(ctx context.Context) (bool, error) {
		var err error
		if st, err = m.ContainerStatus(ctx, id, name); err != nil {
			return false, poll.Stop(err)
		}
		return !st.Running, nil
	})
	return st
}

func readLog(t *testing.T, m *Manager, id, name string) string {
	t.Helper()
	b, err := os.ReadFile(m.LogPath(id, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// bin is the path of a test program inside the container.
func bin(name string) string { return "/" + name }

// hostResources counts what sandboxes leave on the host, for leak checks.
type hostResources struct {
	NSMounts, OverlayMounts, ShmMounts, Veths, Cgroups, IPAM, RuncContainers, NATRules int
}

func countResources(t *testing.T, m *Manager, ids ...string) hostResources {
	t.Helper()
	var r hostResources
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		if strings.Contains(line, " - nsfs ") && strings.HasPrefix(f[4], m.opts.Root) {
			r.NSMounts++
		}
		if strings.Contains(line, " - overlay ") && strings.HasPrefix(f[4], m.opts.Root) {
			r.OverlayMounts++
		}
		if strings.Contains(line, " - tmpfs ") && strings.HasPrefix(f[4], m.opts.Root) {
			r.ShmMounts++
		}
	}
	out, err := exec.Command("ip", "-o", "link", "show", "master", m.opts.Bridge).CombinedOutput()
	if err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "veth") {
				r.Veths++
			}
		}
	}
	for _, root := range m.cgroups.all {
		parent := filepath.Join(root, m.opts.CgroupParent)
		filepath.WalkDir(parent, func(p string, d os.DirEntry, err error) error { //nolint:errcheck // missing is zero
			if err == nil && d.IsDir() && p != parent {
				r.Cgroups++
			}
			return nil
		})
	}
	ents, _ := os.ReadDir(filepath.Join(m.opts.Root, "cni", "networks", "gantry"))
	for _, e := range ents {
		if e.Name() != "lock" && !strings.HasPrefix(e.Name(), "last_reserved_ip") {
			r.IPAM++
		}
	}
	for _, rt := range m.runtimes() {
		r.RuncContainers += len(m.runcList(context.Background(), rt, ""))
	}
	if out, err := exec.Command("iptables", "-t", "nat", "-S").CombinedOutput(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			for _, id := range ids {
				if strings.Contains(line, id) {
					r.NATRules++
				}
			}
		}
	}
	return r
}
