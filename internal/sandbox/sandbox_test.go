package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-run/gantry/internal/poll"
)

func TestHostReachesPod(t *testing.T) {
	m := newTestManager(t, testOptions(t))
	layer := testLayer(t)
	ctx := context.Background()

	var took []time.Duration
	for i := range 5 {
		id := fmt.Sprintf("reach-%d", i)
		t.Cleanup(func() { m.RemoveSandbox(ctx, id) }) //nolint:errcheck // the test removes it; this is for failures
		start := time.Now()
		sb, err := m.CreateSandbox(ctx, PodSpec{ID: id, Namespace: "default", Name: "hello"})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.StartContainer(ctx, id, ContainerSpec{Name: "user", Layers: []string{layer}, Args: []string{bin("hello")}}); err != nil {
			t.Fatal(err)
		}
		body, err := getOK(fmt.Sprintf("http://%s:8080/", sb.IP), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		took = append(took, time.Since(start))
		if body != "Hello World!\n" {
			t.Errorf("GET / = %q, want Hello World!", body)
		}
		if i == 0 {
			logShimMemory(t, m, id, "user")
		}
		if err := m.RemoveSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(took)
	t.Logf("CreateSandbox+StartContainer until the hello server answers: median %v (runs %v)", took[len(took)/2], took)
}

func TestRemoveLeavesNothing(t *testing.T) {
	m := newTestManager(t, testOptions(t))
	layer := testLayer(t)
	ctx := context.Background()
	ids := []string{"leak-a", "leak-b"}
	before := countResources(t, m, ids...)
	hostNS := map[string]string{}
	for _, kind := range podNamespaces {
		hostNS[kind], _ = os.Readlink("/proc/thread-self/ns/" + kind)
	}

	for _, id := range ids {
		sb, err := m.CreateSandbox(ctx, PodSpec{ID: id, Name: id, CPUMillis: 500, MemoryBytes: 256 << 20})
		if err != nil {
			t.Fatal(err)
		}
		// One running container, one that exited, one stopped, and an emptyDir.
		vol, err := m.VolumeDir(id, "scratch")
		if err != nil {
			t.Fatal(err)
		}
		startContainer(t, m, id, ContainerSpec{Name: "web", Layers: []string{layer}, Args: []string{bin("hello")},
			Mounts: []Mount{{Source: vol, Destination: "/scratch"}}, MemoryBytes: 128 << 20})
		startContainer(t, m, id, ContainerSpec{Name: "done", Layers: []string{layer}, Args: []string{bin("probe"), "exit", "0"}})
		startContainer(t, m, id, ContainerSpec{Name: "stopped", Layers: []string{layer}, Args: []string{bin("probe"), "stubborn"}})
		if err := m.StopContainer(ctx, id, "stopped", 0); err != nil {
			t.Fatal(err)
		}
		get(t, fmt.Sprintf("http://%s:8080/", sb.IP), 10*time.Second)
		waitExited(t, m, id, "done", 10*time.Second)
	}
	during := countResources(t, m, ids...)
	if during.NSMounts != 6 || during.OverlayMounts != 4 || during.Veths != 2 || during.IPAM != 2 || during.Cgroups == 0 || during.RuncContainers != 4 || during.NATRules == 0 {
		t.Errorf("while running: %+v, want 6 namespace mounts, 4 overlays, 2 veths, 2 IPs, 4 runc containers, cgroups and NAT rules", during)
	}

	for _, id := range ids {
		if err := m.RemoveSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
		// Idempotent.
		if err := m.RemoveSandbox(ctx, id); err != nil {
			t.Errorf("second remove: %v", err)
		}
	}
	after := countResources(t, m, ids...)
	checkThreadsInHostNamespaces(t, hostNS)
	t.Logf("host resources before %+v, with two pods %+v, after removing them %+v", before, during, after)
	if after != before {
		t.Errorf("after RemoveSandbox: %+v, want what was there before: %+v", after, before)
	}
	for _, id := range ids {
		if _, err := os.Stat(m.sandboxDir(id)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("state of %s still there: %v", id, err)
		}
	}
	if list, err := m.Sandboxes(ctx); err != nil || len(list) != 0 {
		t.Errorf("Sandboxes() = %v, %v; want none", list, err)
	}
}

func TestStopSendsSIGTERMFirst(t *testing.T) {
	m := newTestManager(t, testOptions(t))
	layer := testLayer(t)
	ctx := context.Background()
	sb := createPod(t, m, PodSpec{ID: "stop", Name: "stop"})

	t.Run("graceful", func(t *testing.T) {
		startContainer(t, m, sb.ID, ContainerSpec{Name: "hello", Layers: []string{layer}, Args: []string{bin("hello")}})
		get(t, fmt.Sprintf("http://%s:8080/", sb.IP), 10*time.Second)
		st, err := m.ContainerStatus(ctx, sb.ID, "hello")
		if err != nil || !st.Running || st.Pid == 0 {
			t.Fatalf("ContainerStatus = %+v, %v; want running", st, err)
		}
		start := time.Now()
		if err := m.StopContainer(ctx, sb.ID, "hello", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("StopContainer took %v: the server should have shut down on SIGTERM", took)
		}
		// The hello server shuts down cleanly on SIGTERM and exits 0; a SIGKILL would give 137.
		st, err = m.ContainerStatus(ctx, sb.ID, "hello")
		if err != nil || st.Running || st.ExitCode != 0 || st.Reason != ReasonCompleted || st.FinishedAt.IsZero() {
			t.Errorf("after stop: %+v, %v; want exit 0, Completed", st, err)
		}
		// Restart: a new run, the log appended.
		startContainer(t, m, sb.ID, ContainerSpec{Name: "hello", Layers: []string{layer}, Args: []string{bin("hello")}})
		get(t, fmt.Sprintf("http://%s:8080/", sb.IP), 10*time.Second)
		st, err = m.ContainerStatus(ctx, sb.ID, "hello")
		if err != nil || !st.Running || st.RestartCount != 1 {
			t.Errorf("after restart: %+v, %v; want running, restart count 1", st, err)
		}
		if n := strings.Count(readLog(t, m, sb.ID, "hello"), "hello: listening on"); n != 2 {
			t.Errorf("log has %d start lines, want 2 (appended across restarts):\n%s", n, readLog(t, m, sb.ID, "hello"))
		}
		if err := m.StopContainer(ctx, sb.ID, "hello", 10*time.Second); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ignores SIGTERM", func(t *testing.T) {
		startContainer(t, m, sb.ID, ContainerSpec{Name: "stubborn", Layers: []string{layer}, Args: []string{bin("probe"), "stubborn"}})
		waitForLog(t, m, sb.ID, "stubborn", "ready")
		start := time.Now()
		if err := m.StopContainer(ctx, sb.ID, "stubborn", 500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 500*time.Millisecond {
			t.Errorf("StopContainer took %v, less than the grace period", took)
		}
		st, err := m.ContainerStatus(ctx, sb.ID, "stubborn")
		if err != nil || st.ExitCode != 137 || st.Reason != ReasonError || st.OOMKilled {
			t.Errorf("after stop: %+v, %v; want exit 137 (SIGKILL), Error", st, err)
		}
		if log := readLog(t, m, sb.ID, "stubborn"); !strings.Contains(log, "got terminated") {
			t.Errorf("log %q: the process never saw SIGTERM", log)
		}
	})

	t.Run("exit codes", func(t *testing.T) {
		for _, code := range []int{0, 3} {
			name := fmt.Sprintf("exit%d", code)
			startContainer(t, m, sb.ID, ContainerSpec{Name: name, Layers: []string{layer}, Args: []string{bin("probe"), "exit", fmt.Sprint(code)}})
			st := waitExited(t, m, sb.ID, name, 10*time.Second)
			want := ReasonCompleted
			if code != 0 {
				want = ReasonError
			}
			if st.ExitCode != code || st.Reason != want || st.OOMKilled {
				t.Errorf("%s: %+v; want exit %d, %s", name, st, code, want)
			}
		}
		if _, err := m.ContainerStatus(ctx, sb.ID, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("status of a missing container: %v, want ErrNotFound", err)
		}
	})
}

// TestSignalContainer: SignalContainer returns at once, so a caller can signal several
// containers of one sandbox together and kill later.
func TestSignalContainer(t *testing.T) {
	m := newTestManager(t, testOptions(t))
	layer := testLayer(t)
	ctx := context.Background()
	sb := createPod(t, m, PodSpec{ID: "signal", Name: "signal"})
	startContainer(t, m, sb.ID, ContainerSpec{Name: "hello", Layers: []string{layer}, Args: []string{bin("hello")}})
	startContainer(t, m, sb.ID, ContainerSpec{Name: "stubborn", Layers: []string{layer}, Args: []string{bin("probe"), "stubborn"}})
	get(t, fmt.Sprintf("http://%s:8080/", sb.IP), 10*time.Second)
	waitForLog(t, m, sb.ID, "stubborn", "ready")

	start := time.Now()
	for _, name := range []string{"hello", "stubborn"} {
		if err := m.SignalContainer(ctx, sb.ID, name, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("SignalContainer took %v, want it not to wait for the exit", took)
	}
	// hello exits 0 on SIGTERM; stubborn only logs it and runs on until killed.
	if st := waitExited(t, m, sb.ID, "hello", 10*time.Second); st.ExitCode != 0 || st.Reason != ReasonCompleted {
		t.Errorf("hello after SIGTERM: %+v, want exit 0", st)
	}
	waitForLog(t, m, sb.ID, "stubborn", "got terminated")
	if st, err := m.ContainerStatus(ctx, sb.ID, "stubborn"); err != nil || !st.Running {
		t.Errorf("stubborn after SIGTERM: %+v, %v; want it still running", st, err)
	}
	if err := m.SignalContainer(ctx, sb.ID, "hello", syscall.SIGTERM); err != nil {
		t.Errorf("signalling an exited container: %v, want nothing done", err)
	}
	if err := m.SignalContainer(ctx, sb.ID, "nope", syscall.SIGTERM); !errors.Is(err, ErrNotFound) {
		t.Errorf("signalling a missing container: %v, want ErrNotFound", err)
	}
	if err := m.StopContainer(ctx, sb.ID, "stubborn", 0); err != nil {
		t.Fatal(err)
	}
	if st, err := m.ContainerStatus(ctx, sb.ID, "stubborn"); err != nil || st.ExitCode != 137 {
		t.Errorf("stubborn after StopContainer with no grace: %+v, %v; want exit 137", st, err)
	}
}

func waitForLog(t *testing.T, m *Manager, id, name, want string) {
	t.Helper()
	poll.Until(t, fmt.Sprintf("log of %s to have %q", name, want), 10*time.Second, func(context.Context) (bool, error) {
		got := readLog(t, m, id, name)
		return strings.Contains(got, want), fmt.Errorf("log is %q", got)
	})
}

func TestOOMKilled(t *testing.T) {
	m := newTestManager(t, testOptions(t))
	layer := testLayer(t)
	for _, tc := range []struct {
		name     string
		pod, ctr int64
	}{
		{"container limit", 0, 64 << 20},
		{"pod limit", 64 << 20, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "oom-" + strings.ReplaceAll(tc.name, " ", "-")
			sb := createPod(t, m, PodSpec{ID: id, Name: "oom", MemoryBytes: tc.pod})
			startContainer(t, m, id, ContainerSpec{Name: "bloat", Layers: []string{layer}, Args: []string{bin("autoscale")}, MemoryBytes: tc.ctr})
			get(t, fmt.Sprintf("http://%s:8080/", sb.IP), 10*time.Second)
			if body, err := getOK(fmt.Sprintf("http://%s:8080/?bloat=200", sb.IP), 0); err == nil {
				t.Fatalf("bloat=200 under a 64 MiB limit answered %q", body)
			}
			st := waitExited(t, m, id, "bloat", 10*time.Second)
			if !st.OOMKilled || st.Reason != ReasonOOMKilled || st.ExitCode != 137 {
				t.Errorf("status %+v; want OOMKilled, exit 137", st)
			}
		})
	}
}

// logShimMemory logs the resident memory of a container's shim (sh and runc run), the
// per-container overhead on the host.
func logShimMemory(t *testing.T, m *Manager, id, name string) {
	cs, err := m.loadState(m.containerDir(id, name))
	if err != nil {
		t.Fatal(err)
	}
	pids := []string{fmt.Sprint(cs.ShimPid)}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cs.ShimPid, cs.ShimPid)); err == nil {
		pids = append(pids, strings.Fields(string(b))...)
	}
	var parts []string
	for _, pid := range pids {
		b, _ := os.ReadFile("/proc/" + pid + "/status")
		var cmd, rss string
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Name:"); ok {
				cmd = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				rss = strings.TrimSpace(v)
			}
		}
		parts = append(parts, cmd+" "+rss)
	}
	t.Logf("shim resident memory: %s", strings.Join(parts, ", "))
}

// checkThreadsInHostNamespaces fails if any thread of this process was left in a pod's
// network, IPC or UTS namespace.
func checkThreadsInHostNamespaces(t *testing.T, hostNS map[string]string) {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range podNamespaces {
		want := hostNS[kind]
		for _, task := range tasks {
			got, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/" + kind)
			if err == nil && got != want {
				t.Errorf("thread %s is in %s, not the host's %s", task.Name(), got, want)
			}
		}
	}
}

func TestStartContainersSideBySide(t *testing.T) {
	m := newTestManager(t, testOptions(t))
	layer := testLayer(t)
	ctx := context.Background()
	sb := createPod(t, m, PodSpec{ID: "together", Name: "together"})
	errs := m.StartContainers(ctx, sb.ID, []ContainerSpec{
		{Name: "hello", Layers: []string{layer}, Args: []string{bin("hello")}},
		{Name: "noargs", Layers: []string{layer}},
		{Name: "stubborn", Layers: []string{layer}, Args: []string{bin("probe"), "stubborn"}},
		{Name: "hello", Layers: []string{layer}, Args: []string{bin("hello")}},
		{Name: "../up", Layers: []string{layer}, Args: []string{bin("hello")}},
	})
	if len(errs) != 5 || errs[0] != nil || errs[2] != nil {
		t.Fatalf("errors %v, want none for hello and stubborn", errs)
	}
	for i, want := range map[int]string{1: "args: must not be empty", 3: "named twice", 4: "container name"} {
		if errs[i] == nil || !strings.Contains(errs[i].Error(), want) {
			t.Errorf("error %d: %v, want one saying %q", i, errs[i], want)
		}
	}
	get(t, fmt.Sprintf("http://%s:8080/", sb.IP), 10*time.Second)
	waitForLog(t, m, sb.ID, "stubborn", "ready")
	for _, name := range []string{"hello", "stubborn"} {
		if st, err := m.ContainerStatus(ctx, sb.ID, name); err != nil || !st.Running || st.RestartCount != 0 {
			t.Errorf("%s: %+v, %v; want it running, started once", name, st, err)
		}
	}
	if _, err := m.ContainerStatus(ctx, sb.ID, "noargs"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the container refused: %v, want ErrNotFound", err)
	}
}
