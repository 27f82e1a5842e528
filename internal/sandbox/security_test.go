package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/gantry-run/gantry/test/images/probe-sec/report"
)

// allowedBy reports whether the profile lets name through with any arguments.
func allowedBy(p *specs.LinuxSeccomp, name string) bool {
	for _, r := range p.Syscalls {
		if r.Action == specs.ActAllow && len(r.Args) == 0 && slices.Contains(r.Names, name) {
			return true
		}
	}
	return false
}

func TestDefaultSeccompIsAnAllowList(t *testing.T) {
	p := defaultSeccomp(DefaultCapabilities)
	if p.DefaultAction != specs.ActErrno || p.DefaultErrnoRet == nil || *p.DefaultErrnoRet != uint(unix.EPERM) {
		t.Fatalf("default action %s (errno %v), want EPERM for everything not listed", p.DefaultAction, p.DefaultErrnoRet)
	}
	for _, name := range []string{
		"io_uring_setup", "io_uring_enter", "io_uring_register",
		"mount", "umount2", "unshare", "setns", "pivot_root", "keyctl", "add_key", "request_key",
		"bpf", "perf_event_open", "userfaultfd", "kexec_load", "init_module", "reboot", "swapon",
		"settimeofday", "clock_settime", "open_by_handle_at", "chroot_not_a_call", "ptrace_not",
		"clone", "clone3", "socket", "personality", "mbind", "vhangup", "acct", "syslog",
	} {
		if allowedBy(p, name) {
			t.Errorf("%s is allowed unconditionally", name)
		}
	}
	for _, name := range []string{"read", "write", "openat", "epoll_pwait", "futex", "execve", "mmap", "getrandom", "chroot", "rseq"} {
		if !allowedBy(p, name) {
			t.Errorf("%s is not allowed", name)
		}
	}
	var clone, clone3 bool
	for _, r := range p.Syscalls {
		switch {
		case slices.Equal(r.Names, []string{"clone"}):
			clone = r.Action == specs.ActAllow && len(r.Args) == 1 && r.Args[0].Op == specs.OpMaskedEqual &&
				r.Args[0].Value&unix.CLONE_NEWUSER != 0 && r.Args[0].Value&unix.CLONE_NEWNS != 0 && r.Args[0].ValueTwo == 0
		case slices.Equal(r.Names, []string{"clone3"}):
			clone3 = r.Action == specs.ActErrno && r.ErrnoRet != nil && *r.ErrnoRet == uint(unix.ENOSYS)
		}
	}
	if !clone || !clone3 {
		t.Errorf("clone allowed only without namespace flags: %v; clone3 ENOSYS: %v", clone, clone3)
	}
	// What a capability brings back, and only with it.
	if noChroot := defaultSeccomp(nil); allowedBy(noChroot, "chroot") {
		t.Error("chroot allowed without CAP_SYS_CHROOT")
	}
	if ptrace := defaultSeccomp(append(slices.Clone(DefaultCapabilities), "CAP_SYS_PTRACE")); !allowedBy(ptrace, "kcmp") {
		t.Error("kcmp not allowed with CAP_SYS_PTRACE")
	}
	if admin := defaultSeccomp([]string{"CAP_SYS_ADMIN"}); !allowedBy(admin, "clone") || !allowedBy(admin, "mount") {
		t.Error("CAP_SYS_ADMIN does not bring back clone and mount")
	}
}

func TestBuildSpecHonoursSecurity(t *testing.T) {
	in := specInput{Container: ContainerSpec{Name: "c", Args: []string{"/app"}, Security: Security{
		Capabilities:      []string{"CAP_NET_BIND_SERVICE"},
		ReadOnlyRoot:      true,
		SupplementaryGIDs: []uint32{10, 20},
	}}}
	s := buildSpec(in)
	if !slices.Equal(s.Process.Capabilities.Bounding, []string{"CAP_NET_BIND_SERVICE"}) ||
		!slices.Equal(s.Process.Capabilities.Effective, []string{"CAP_NET_BIND_SERVICE"}) {
		t.Errorf("capabilities %+v, want CAP_NET_BIND_SERVICE only", s.Process.Capabilities)
	}
	if !s.Root.Readonly || !slices.Equal(s.Process.User.AdditionalGids, []uint32{10, 20}) || !s.Process.NoNewPrivileges {
		t.Errorf("root %+v, user %+v, no_new_privs %v", s.Root, s.Process.User, s.Process.NoNewPrivileges)
	}
	if s.Linux.Seccomp == nil || allowedBy(s.Linux.Seccomp, "chroot") {
		t.Errorf("seccomp %v, want the default profile without what CAP_SYS_CHROOT brings", s.Linux.Seccomp)
	}
	in.Container.Security = Security{Capabilities: []string{}, Unconfined: true}
	s = buildSpec(in)
	if s.Linux.Seccomp != nil || len(s.Process.Capabilities.Bounding) != 0 {
		t.Errorf("unconfined with no capabilities: seccomp %v, capabilities %+v", s.Linux.Seccomp, s.Process.Capabilities)
	}
}

// runProbeSec runs probe-sec -once in a fresh container of sb and returns its report.
func runProbeSec(t *testing.T, m *Manager, sb *Sandbox, c ContainerSpec, args ...string) report.Report {
	t.Helper()
	c.Layers = []string{testLayer(t)}
	c.Args = append([]string{bin("probe-sec"), "-once"}, args...)
	startContainer(t, m, sb.ID, c)
	st := waitExited(t, m, sb.ID, c.Name, 30*time.Second)
	out := readLog(t, m, sb.ID, c.Name)
	if st.ExitCode != 0 {
		t.Fatalf("probe-sec exited %d: %s", st.ExitCode, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.StopContainer(ctx, sb.ID, c.Name, 0); err != nil {
		t.Fatal(err)
	}
	var r report.Report
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
		t.Fatalf("probe-sec printed %q: %v", out, err)
	}
	return r
}

// capBit is capability number n of a /proc/self/status capability mask.
func capBit(t *testing.T, mask string, n int) bool {
	t.Helper()
	v, err := strconv.ParseUint(mask, 16, 64)
	if err != nil {
		t.Fatalf("capability mask %q: %v", mask, err)
	}
	return v&(1<<n) != 0
}

func TestSecurityInsideContainers(t *testing.T) {
	m := newTestManager(t, testOptions(t))
	sb := createPod(t, m, PodSpec{ID: "security", Namespace: "default", Name: "security-pod"})

	t.Run("default", func(t *testing.T) {
		r := runProbeSec(t, m, sb, ContainerSpec{Name: "default"})
		if r.IOUringSetup != "EPERM" {
			t.Errorf("io_uring_setup: %s, want EPERM", r.IOUringSetup)
		}
		if r.Status["Seccomp"] != "2" || r.Status["NoNewPrivs"] != "1" {
			t.Errorf("Seccomp %s, NoNewPrivs %s; want 2 (filter) and 1", r.Status["Seccomp"], r.Status["NoNewPrivs"])
		}
		if !capBit(t, r.Status["CapEff"], unix.CAP_NET_RAW) || capBit(t, r.Status["CapBnd"], unix.CAP_SYS_ADMIN) {
			t.Errorf("CapEff %s, CapBnd %s: want the default set (NET_RAW, not SYS_ADMIN)", r.Status["CapEff"], r.Status["CapBnd"])
		}
		if r.RootWrite != "ok" {
			t.Errorf("writing to /: %s, want ok", r.RootWrite)
		}
	})
	t.Run("capabilities dropped show in /proc/self/status", func(t *testing.T) {
		caps := slices.DeleteFunc(slices.Clone(DefaultCapabilities), func(c string) bool { return c == "CAP_NET_RAW" })
		r := runProbeSec(t, m, sb, ContainerSpec{Name: "dropraw", Security: Security{Capabilities: caps}})
		if capBit(t, r.Status["CapEff"], unix.CAP_NET_RAW) || capBit(t, r.Status["CapBnd"], unix.CAP_NET_RAW) {
			t.Errorf("CapEff %s, CapBnd %s still hold CAP_NET_RAW", r.Status["CapEff"], r.Status["CapBnd"])
		}
		if !capBit(t, r.Status["CapEff"], unix.CAP_CHOWN) {
			t.Errorf("CapEff %s lost CAP_CHOWN, which was not dropped", r.Status["CapEff"])
		}
		r = runProbeSec(t, m, sb, ContainerSpec{Name: "dropall", UID: 65532, GID: 65532, Security: Security{Capabilities: []string{}}})
		if r.Status["CapEff"] != "0000000000000000" || r.Status["CapBnd"] != "0000000000000000" || r.UID != 65532 {
			t.Errorf("drop ALL as 65532: uid %d, CapEff %s, CapBnd %s; want 65532 and empty sets", r.UID, r.Status["CapEff"], r.Status["CapBnd"])
		}
	})
	t.Run("readOnlyRootFilesystem makes / read-only", func(t *testing.T) {
		r := runProbeSec(t, m, sb, ContainerSpec{Name: "rofs", Security: Security{ReadOnlyRoot: true}})
		if !strings.Contains(r.RootWrite, "read-only file system") {
			t.Errorf("writing to /: %q, want a read-only file system", r.RootWrite)
		}
	})
	t.Run("supplementary groups", func(t *testing.T) {
		r := runProbeSec(t, m, sb, ContainerSpec{Name: "groups", UID: 1000, GID: 1000, Security: Security{SupplementaryGIDs: []uint32{2000, 3000}}})
		if !slices.Contains(r.Groups, 2000) || !slices.Contains(r.Groups, 3000) {
			t.Errorf("groups %v, want 2000 and 3000 among them", r.Groups)
		}
	})
	t.Run("unconfined", func(t *testing.T) {
		r := runProbeSec(t, m, sb, ContainerSpec{Name: "unconfined", Security: Security{Unconfined: true}})
		if r.Status["Seccomp"] != "0" {
			t.Errorf("Seccomp %s, want 0 (no filter)", r.Status["Seccomp"])
		}
	})
}

// TestSubPathStaysInsideItsVolume is the kubelet's CVE-2017-1002101 / CVE-2021-25741 attack:
// one container plants a symbolic link to / in a shared emptyDir, and a second container
// mounts it as a subPath. Before subPaths were resolved inside their volume, runc followed
// the link on the host and the second container got the host's / read-write.
func TestSubPathStaysInsideItsVolume(t *testing.T) {
	m := newTestManager(t, testOptions(t))
	layer := testLayer(t)
	sb := createPod(t, m, PodSpec{ID: "subpath", Namespace: "default", Name: "subpath-pod"})
	vol, err := m.VolumeDir(sb.ID, "shared")
	if err != nil {
		t.Fatal(err)
	}
	data := []Mount{{Source: vol, Destination: "/data"}}
	for i, link := range [][2]string{{"/", "/data/esc"}, {"../../..", "/data/up"}, {"/proc/self/root", "/data/magic"}, {"dir", "/data/inside"}} {
		c := ContainerSpec{Name: "plant" + strconv.Itoa(i), Layers: []string{layer}, Mounts: data,
			Args: []string{bin("probe-sec"), "-symlink", link[0], link[1]}}
		startContainer(t, m, sb.ID, c)
		if st := waitExited(t, m, sb.ID, c.Name, 30*time.Second); st.ExitCode != 0 {
			t.Fatalf("planting %s -> %s: exit %d: %s", link[1], link[0], st.ExitCode, readLog(t, m, sb.ID, c.Name))
		}
	}
	if err := os.MkdirAll(filepath.Join(vol, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(vol, "dir", "inside-the-volume"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"esc", "esc/etc", "up", "magic", "dir/../../x"} {
		t.Run("refused "+sub, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := m.StartContainer(ctx, sb.ID, ContainerSpec{Name: "victim", Layers: []string{layer},
				Args:   []string{bin("probe-sec"), "-once", "-ls", "/esc"},
				Mounts: []Mount{{Source: vol, SubPath: sub, Destination: "/esc"}}})
			if err == nil {
				st := waitExited(t, m, sb.ID, "victim", 30*time.Second)
				t.Fatalf("subPath %s was mounted (exit %d): %s", sub, st.ExitCode, readLog(t, m, sb.ID, "victim"))
			}
			if !errors.Is(err, ErrSubPathEscapes) {
				t.Errorf("error %v, want ErrSubPathEscapes", err)
			}
		})
	}
	t.Run("a link inside the volume is followed", func(t *testing.T) {
		r := runProbeSec(t, m, sb, ContainerSpec{Name: "inside", Mounts: []Mount{{Source: vol, SubPath: "inside", Destination: "/esc"}}}, "-ls", "/esc")
		if !slices.Equal(r.Ls, []string{"inside-the-volume"}) {
			t.Errorf("/esc lists %v, want the volume's dir", r.Ls)
		}
	})
	t.Run("a file through a link inside the volume", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(vol, "dir", "settings"), []byte("color=blue"), 0o644); err != nil {
			t.Fatal(err)
		}
		c := ContainerSpec{Name: "file", Layers: []string{layer}, Args: []string{bin("probe"), "read", "/etc/settings"},
			Mounts: []Mount{{Source: vol, SubPath: "inside/settings", Destination: "/etc/settings", ReadOnly: true}}}
		startContainer(t, m, sb.ID, c)
		if st := waitExited(t, m, sb.ID, c.Name, 30*time.Second); st.ExitCode != 0 || readLog(t, m, sb.ID, c.Name) != "color=blue" {
			t.Errorf("exit %d, read %q; want the file's content", st.ExitCode, readLog(t, m, sb.ID, c.Name))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := m.StopContainer(ctx, sb.ID, c.Name, 0); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a missing subPath is made inside the volume", func(t *testing.T) {
		runProbeSec(t, m, sb, ContainerSpec{Name: "made", Mounts: []Mount{{Source: vol, SubPath: "new/deeper", Destination: "/esc"}}}, "-ls", "/esc")
		if fi, err := os.Lstat(filepath.Join(vol, "new", "deeper")); err != nil || !fi.IsDir() {
			t.Errorf("new/deeper in the volume: %v, %v", fi, err)
		}
	})
	if mounts, err := mountsUnder(m.sandboxDir(sb.ID)); err == nil {
		for _, mp := range mounts {
			if strings.Contains(mp, subPathsDir) {
				t.Errorf("staged subPath mount %s left after its container stopped", mp)
			}
		}
	}
}
