package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantry-run/gantry/internal/procroute"
)

// runtimeReport is the part of test/images/runtime's report the tests check.
type runtimeReport struct {
	Env    map[string]string `json:"env"`
	Cgroup struct {
		MemoryLimitBytes *int64 `json:"memoryLimitBytes"`
		CPUMillicores    *int64 `json:"cpuMillicores"`
	} `json:"cgroup"`
	User struct {
		UID int `json:"uid"`
		GID int `json:"gid"`
	} `json:"user"`
	Args            []string `json:"args"`
	Hostname        string   `json:"hostname"`
	PIDs            []int    `json:"pids"`
	ProcSysReadOnly bool     `json:"procSysReadOnly"`
	Stdin           struct {
		EOF bool `json:"eof"`
	} `json:"stdin"`
}

func TestRuntimeContract(t *testing.T) {
	m := newTestManager(t, testOptions(t))
	layer := testLayer(t)
	ctx := context.Background()
	sb := createPod(t, m, PodSpec{ID: "contract", Namespace: "default", Name: "contract-pod", Hostname: "contract", CPUMillis: 1000, MemoryBytes: 512 << 20})
	vol, err := m.VolumeDir(sb.ID, "data")
	if err != nil {
		t.Fatal(err)
	}
	// Container A reports what it sees; B is a second runtime server on another port.
	startContainer(t, m, sb.ID, ContainerSpec{
		Name:       "app",
		Layers:     []string{layer},
		Args:       []string{bin("runtime"), "--flag", "value with spaces"},
		Env:        []string{"PORT=8080", "K_SERVICE=contract", "GREETING=hi there"},
		WorkingDir: "/work/dir",
		UID:        1000, GID: 1000,
		Mounts:      []Mount{{Source: vol, Destination: "/data"}},
		CPUMillis:   500,
		MemoryBytes: 128 << 20,
	})
	startContainer(t, m, sb.ID, ContainerSpec{Name: "sidecar", Layers: []string{layer}, Args: []string{bin("runtime")}, Env: []string{"PORT=8081"}})

	var rep runtimeReport
	if err := json.Unmarshal([]byte(get(t, fmt.Sprintf("http://%s:8080/", sb.IP), 10*time.Second)), &rep); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/runtime", "--flag", "value with spaces"}, rep.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	for k, want := range map[string]string{"K_SERVICE": "contract", "GREETING": "hi there", "PATH": strings.TrimPrefix(defaultPath, "PATH=")} {
		if rep.Env[k] != want {
			t.Errorf("env %s = %q, want %q", k, rep.Env[k], want)
		}
	}
	if rep.User.UID != 1000 || rep.User.GID != 1000 {
		t.Errorf("user %+v, want uid and gid 1000", rep.User)
	}
	if rep.Hostname != "contract" {
		t.Errorf("hostname %q, want contract", rep.Hostname)
	}
	// Its own PID namespace: the server is PID 1 and no host process shows.
	if len(rep.PIDs) == 0 || rep.PIDs[0] != 1 || len(rep.PIDs) > 3 {
		t.Errorf("visible PIDs %v, want only the container's own (1, …)", rep.PIDs)
	}
	if !rep.ProcSysReadOnly {
		t.Error("/proc/sys is writable")
	}
	if !rep.Stdin.EOF {
		t.Error("stdin does not read EOF")
	}
	if rep.Cgroup.MemoryLimitBytes == nil || *rep.Cgroup.MemoryLimitBytes != 128<<20 {
		t.Errorf("memory limit %v, want %d", deref(rep.Cgroup.MemoryLimitBytes), 128<<20)
	}
	if rep.Cgroup.CPUMillicores == nil || *rep.Cgroup.CPUMillicores != 500 {
		t.Errorf("CPU limit %v millicores, want 500", deref(rep.Cgroup.CPUMillicores))
	}

	t.Run("working dir and volume", func(t *testing.T) {
		startContainer(t, m, sb.ID, ContainerSpec{Name: "wd", Layers: []string{layer}, Args: []string{bin("probe"), "stubborn"}, WorkingDir: "/work/dir"})
		var out bytes.Buffer
		code, err := m.Exec(ctx, sb.ID, "wd", []string{bin("probe"), "write", "note", "5"}, nil, &out, &out, false)
		if err != nil || code != 0 {
			t.Fatalf("exec write: %d, %v: %s", code, err, out.String())
		}
		if _, err := os.Stat(filepath.Join(sb.Dir, "containers", "wd", "upper", "work", "dir", "note")); err != nil {
			t.Errorf("the file written in the working dir is not in the writable layer: %v", err)
		}
		// The app runs as 1000: the emptyDir is writable to it.
		code, err = m.Exec(ctx, sb.ID, "app", []string{bin("probe"), "write", "/data/f", "5"}, nil, &out, &out, false)
		if err != nil || code != 0 {
			t.Fatalf("exec write to the volume: %d, %v: %s", code, err, out.String())
		}
		if fi, err := os.Stat(filepath.Join(vol, "f")); err != nil || fi.Size() != 5 {
			t.Errorf("volume file: %v, %v", fi, err)
		}
		if err := m.StopContainer(ctx, sb.ID, "wd", 0); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("containers share the network", func(t *testing.T) {
		var out, errOut bytes.Buffer
		code, err := m.Exec(ctx, sb.ID, "sidecar", []string{bin("probe"), "get", "http://127.0.0.1:8080/"}, nil, &out, &errOut, false)
		if err != nil || code != 0 {
			t.Fatalf("exec in sidecar: %d, %v: %s", code, err, errOut.String())
		}
		var fromB runtimeReport
		if err := json.Unmarshal(out.Bytes(), &fromB); err != nil || fromB.Env["K_SERVICE"] != "contract" {
			t.Errorf("the sidecar reached %q on 127.0.0.1:8080, want the app's report (%v)", out.String(), err)
		}
	})

	t.Run("exec", func(t *testing.T) {
		var out bytes.Buffer
		code, err := m.Exec(ctx, sb.ID, "app", []string{bin("probe"), "cat"}, strings.NewReader("through stdin"), &out, &out, false)
		if err != nil || code != 0 || out.String() != "through stdin" {
			t.Errorf("exec cat = %d, %v, %q", code, err, out.String())
		}
		code, err = m.Exec(ctx, sb.ID, "app", []string{bin("probe"), "exit", "7"}, nil, &out, &out, false)
		if err != nil || code != 7 {
			t.Errorf("exec exit 7 = %d, %v", code, err)
		}
		// With a terminal: output through it, "\n" becomes "\r\n".
		out.Reset()
		code, err = m.Exec(ctx, sb.ID, "app", []string{bin("probe"), "read", "/etc/hostname"}, strings.NewReader(""), &out, nil, true)
		if err != nil || code != 0 || out.String() != "contract\r\n" {
			t.Errorf("exec with a tty = %d, %v, %q", code, err, out.String())
		}
		if _, err := m.Exec(ctx, sb.ID, "nope", []string{bin("probe")}, nil, &out, &out, false); !errors.Is(err, ErrNotFound) {
			t.Errorf("exec in a missing container: %v, want ErrNotFound", err)
		}
	})

	t.Run("security", func(t *testing.T) {
		// As root in the container, with the default capabilities: still no mounts, no
		// module loading, no new user namespaces.
		startContainer(t, m, sb.ID, ContainerSpec{Name: "root", Layers: []string{layer}, Args: []string{bin("probe"), "stubborn"}})
		var out bytes.Buffer
		for _, path := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list"} {
			if _, err := os.Stat(path); err != nil {
				continue // this kernel has none
			}
			out.Reset()
			code, err := m.Exec(ctx, sb.ID, "root", []string{bin("probe"), "read", path}, nil, &out, &out, false)
			if err != nil || code != 0 || out.Len() != 0 {
				t.Errorf("reading %s: %d, %v, %q; want masked (empty)", path, code, err, out.String())
			}
		}
		out.Reset()
		if code, err := m.Exec(ctx, sb.ID, "root", []string{bin("probe"), "userns"}, nil, &out, &out, false); err != nil || code == 0 || !strings.Contains(out.String(), "operation not permitted") {
			t.Errorf("unshare(CLONE_NEWUSER): %d, %v, %q; want EPERM from seccomp", code, err, out.String())
		}
		out.Reset()
		if code, err := m.Exec(ctx, sb.ID, "root", []string{bin("probe"), "read", "/etc/hostname"}, nil, &out, &out, false); err != nil || code != 0 || out.String() != "contract\n" {
			t.Errorf("/etc/hostname: %d, %v, %q", code, err, out.String())
		}
		code, err := m.Exec(ctx, sb.ID, "root", []string{bin("probe"), "write", "/proc/sys/kernel/hostname", "1"}, nil, &out, &out, false)
		if err != nil || code == 0 {
			t.Errorf("writing /proc/sys as root in the container: %d, %v; want refused", code, err)
		}
		out.Reset()
		code, err = m.Exec(ctx, sb.ID, "root", []string{bin("probe"), "write", "/sys/kernel/x", "1"}, nil, &out, &out, false)
		if err != nil || code == 0 {
			t.Errorf("writing /sys as root in the container: %d, %v; want refused", code, err)
		}
	})

	t.Run("storage usage", func(t *testing.T) {
		before, err := m.StorageUsage(sb.ID)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if code, err := m.Exec(ctx, sb.ID, "root", []string{bin("probe"), "write", "/big", fmt.Sprint(8 << 20)}, nil, &out, &out, false); err != nil || code != 0 {
			t.Fatalf("exec write: %d, %v: %s", code, err, out.String())
		}
		after, err := m.StorageUsage(sb.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := after - before; got < 8<<20 || got > 9<<20 {
			t.Errorf("usage grew by %d bytes after writing 8 MiB", got)
		}
		t.Logf("storage usage %d → %d bytes", before, after)
	})
}

func deref(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestReadopt(t *testing.T) {
	opts := testOptions(t)
	m := newTestManager(t, opts)
	layer := testLayer(t)
	ctx := context.Background()
	sb, err := m.CreateSandbox(ctx, PodSpec{ID: "adopt", Namespace: "ns", Name: "adopt", Labels: map[string]string{"app": "adopt"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.RemoveSandbox(ctx, "adopt") }) //nolint:errcheck // for failures only
	startContainer(t, m, sb.ID, ContainerSpec{Name: "hello", Layers: []string{layer}, Args: []string{bin("hello")}})
	get(t, fmt.Sprintf("http://%s:8080/", sb.IP), 10*time.Second)
	// Idempotent create: the same sandbox back.
	again, err := m.CreateSandbox(ctx, PodSpec{ID: "adopt", Name: "adopt"})
	if err != nil || !again.IP.Equal(sb.IP) {
		t.Fatalf("second CreateSandbox = %v, %v; want the same sandbox", again, err)
	}

	// A new Manager on the same root, as after a restart of gantry.
	m2 := newTestManager(t, opts)
	list, err := m2.Sandboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 {
		t.Fatalf("Sandboxes() = %+v, want one", list)
	}
	got := list[0]
	if got.ID != "adopt" || !got.IP.Equal(sb.IP) || !got.NetworkReady || got.Spec.Labels["app"] != "adopt" || got.Spec.Namespace != "ns" {
		t.Errorf("adopted sandbox %+v, want adopt at %s with its labels", got, sb.IP)
	}
	if len(got.Containers) != 1 || !got.Containers[0].Running || got.Containers[0].Name != "hello" {
		t.Errorf("adopted containers %+v, want hello running", got.Containers)
	}
	get(t, fmt.Sprintf("http://%s:8080/", sb.IP), 10*time.Second)
	if err := m2.StopContainer(ctx, "adopt", "hello", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if st, err := m2.ContainerStatus(ctx, "adopt", "hello"); err != nil || st.ExitCode != 0 || st.Running {
		t.Errorf("status after stop by the new manager: %+v, %v", st, err)
	}
	if err := m2.RemoveSandbox(ctx, "adopt"); err != nil {
		t.Fatal(err)
	}
	if r := countResources(t, m2, "adopt"); r != (hostResources{}) {
		t.Errorf("left behind: %+v", r)
	}
}

func TestNewManagerNamesWhatIsMissing(t *testing.T) {
	requireSandboxes(t)
	opts := testOptions(t)
	opts.CNIBinDirs = []string{t.TempDir()}
	_, err := NewManager(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "containernetworking-plugins") || !strings.Contains(err.Error(), "bridge") {
		t.Errorf("NewManager without CNI plugins: %v; want an error naming the plugins and the apt package", err)
	}
	opts = testOptions(t)
	opts.RuncPath = "/nonexistent/runc"
	if _, err := NewManager(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "apt package runc") {
		t.Errorf("NewManager without runc: %v; want an error naming the apt package", err)
	}
}

func TestCheckPodCIDR(t *testing.T) {
	// The host's own routes (other than the default one) must not overlap the pod range.
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		t.Skip("no /proc/net/route")
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 8 || f[7] == "00000000" {
			continue
		}
		dst, _ := procroute.Addr(f[1])
		if err := checkPodCIDR(dst.String()+"/32", "none"); err == nil {
			t.Errorf("a pod CIDR inside the host's route via %s was accepted", f[0])
		}
		if err := checkPodCIDR(dst.String()+"/32", f[0]); err != nil {
			t.Errorf("the route via the pods' own bridge counted as a conflict: %v", err)
		}
		return
	}
	t.Skip("the host has no route but the default one")
}

func TestBuildSpec(t *testing.T) {
	s := buildSpec(specInput{
		Container:  ContainerSpec{Name: "c", Args: []string{"/app"}, Env: []string{"A=1"}, UID: 5, GID: 6, CPUMillis: 250, MemoryBytes: 1 << 20, Mounts: []Mount{{Source: "/h", Destination: "/c", ReadOnly: true}}},
		CgroupPath: "/gantry/pod/c",
		NSDir:      "/state/ns",
		ShmDir:     "/state/shm",
		EtcDir:     "/state/etc",
	})
	if s.Process.Terminal || !s.Process.NoNewPrivileges || s.Process.User.UID != 5 || s.Process.User.GID != 6 || s.Process.Cwd != "/" {
		t.Errorf("process %+v", s.Process)
	}
	if diff := cmp.Diff([]string{defaultPath, "A=1"}, s.Process.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if slices.Contains(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN") || len(s.Process.Capabilities.Bounding) != 14 {
		t.Errorf("capabilities %v, want Docker's 14 defaults", s.Process.Capabilities.Bounding)
	}
	if *s.Linux.Resources.CPU.Quota != 25000 || *s.Linux.Resources.CPU.Period != 100000 || *s.Linux.Resources.Memory.Limit != 1<<20 {
		t.Errorf("resources %+v", s.Linux.Resources)
	}
	ns := map[string]string{}
	for _, n := range s.Linux.Namespaces {
		ns[string(n.Type)] = n.Path
	}
	if diff := cmp.Diff(map[string]string{"pid": "", "mount": "", "network": "/state/ns/net", "ipc": "/state/ns/ipc", "uts": "/state/ns/uts"}, ns); diff != "" {
		t.Errorf("namespaces (-want +got):\n%s", diff)
	}
	last := s.Mounts[len(s.Mounts)-1]
	if last.Destination != "/c" || !slices.Contains(last.Options, "ro") {
		t.Errorf("volume mount %+v, want /c read-only", last)
	}
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != "SCMP_ACT_ERRNO" || slices.Contains(s.Linux.Seccomp.Syscalls[0].Names, "mount") {
		t.Errorf("seccomp %+v, want the default allow-list", s.Linux.Seccomp)
	}
}
