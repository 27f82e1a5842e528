package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUserNamespace: a pod with a user namespace runs as uid 0 inside and as a host uid of
// its own range outside, writes its root filesystem, serves, and a second pod gets another
// range.
func TestUserNamespace(t *testing.T) {
	opts := testOptions(t)
	m := newTestManager(t, opts)
	layer := testLayer(t)
	a := createPod(t, m, PodSpec{ID: "userns-a", Name: "a", UserNamespace: true})
	b := createPod(t, m, PodSpec{ID: "userns-b", Name: "b", UserNamespace: true})
	if a.UserNS == nil || b.UserNS == nil || a.UserNS.HostID == b.UserNS.HostID || a.UserNS.HostID < userNSFirstHostID {
		t.Fatalf("id ranges %+v and %+v; want two distinct ranges above %d", a.UserNS, b.UserNS, userNSFirstHostID)
	}
	// A volume of the node's, in a directory private to the host's root, with a file only
	// root may read: the pod's root reads it through an idmapped mount.
	private := t.TempDir()
	if err := os.WriteFile(filepath.Join(private, "secret"), []byte("s3cr3t"), 0o600); err != nil {
		t.Fatal(err)
	}
	startContainer(t, m, a.ID, ContainerSpec{Name: "app", Layers: []string{layer}, Args: []string{bin("hello")}, Env: []string{"PORT=8080"},
		Mounts: []Mount{{Source: private, Destination: "/secrets", ReadOnly: true}}})
	if got := get(t, fmt.Sprintf("http://%s:8080/", a.IP), 10*time.Second); !strings.Contains(got, "Hello") {
		t.Errorf("GET = %q; want the hello reply", got)
	}
	st, err := m.ContainerStatus(context.Background(), a.ID, "app")
	if err != nil || !st.Running {
		t.Fatalf("status %+v, %v", st, err)
	}
	want := fmt.Sprintf("0 %d %d", a.UserNS.HostID, UserNSSize)
	if got := strings.Join(strings.Fields(readTrimmed(t, fmt.Sprintf("/proc/%d/uid_map", st.Pid))), " "); got != want {
		t.Errorf("/proc/<pid>/uid_map = %q; want %q", got, want)
	}
	status := readTrimmed(t, fmt.Sprintf("/proc/%d/status", st.Pid))
	if !strings.Contains(status, "\nUid:\t"+strconv.Itoa(int(a.UserNS.HostID))+"\t") {
		t.Errorf("the container's process does not run as host uid %d:\n%s", a.UserNS.HostID, status)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	for _, argv := range [][]string{
		{bin("probe"), "read", "/proc/self/uid_map"},
		{bin("probe"), "write", "/made-by-root", "10"},
		{bin("probe"), "read", "/proc/sys/kernel/hostname"},
		{bin("probe"), "read", "/secrets/secret"},
	} {
		out.Reset()
		errOut.Reset()
		code, err := m.Exec(ctx, a.ID, "app", argv, nil, &out, &errOut, false)
		if err != nil || code != 0 {
			t.Fatalf("exec %v: %d, %v: %s", argv, code, err, errOut.String())
		}
		t.Logf("%v: %s", argv, strings.TrimSpace(out.String()))
	}
	fi, err := os.Stat(m.containerDir(a.ID, "app") + "/upper/made-by-root")
	if err != nil {
		t.Fatal(err)
	}
	if owner := fi.Sys().(*syscall.Stat_t).Uid; owner != a.UserNS.HostID {
		t.Errorf("a file the pod's root made is owned by host uid %d; want %d", owner, a.UserNS.HostID)
	}

	// After a restart: a new manager keeps the ranges in use, restarts the container in its
	// user namespace, and removes everything.
	m2 := newTestManager(t, opts)
	c := createPod(t, m2, PodSpec{ID: "userns-c", Name: "c", UserNamespace: true})
	if c.UserNS.HostID == a.UserNS.HostID || c.UserNS.HostID == b.UserNS.HostID {
		t.Errorf("a new manager gave range %d again", c.UserNS.HostID)
	}
	if err := m2.StopContainer(ctx, a.ID, "app", time.Second); err != nil {
		t.Fatal(err)
	}
	startContainer(t, m2, a.ID, ContainerSpec{Name: "app", Layers: []string{layer}, Args: []string{bin("probe"), "read", "/proc/self/uid_map"}})
	waitExited(t, m2, a.ID, "app", 30*time.Second)
	if got := readLog(t, m2, a.ID, "app"); !strings.Contains(strings.Join(strings.Fields(got), " "), want) {
		t.Errorf("restarted by a new manager, the container's uid_map is %q; want %q", got, want)
	}
	for _, id := range []string{a.ID, b.ID, c.ID} {
		if err := m2.RemoveSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if r := countResources(t, m2, a.ID, b.ID, c.ID); r != (hostResources{}) {
		t.Errorf("left behind: %+v", r)
	}
}
