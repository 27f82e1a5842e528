package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readTrimmed is a small file's content without surrounding space.
func readTrimmed(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// setOwnOOMScoreAdj sets the test process's OOM score adjustment, as gantry sets its own,
// and restores it when the test ends.
func setOwnOOMScoreAdj(t *testing.T, adj int) {
	t.Helper()
	old := readTrimmed(t, "/proc/self/oom_score_adj")
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(adj)), 0); err != nil {
		t.Logf("cannot set this process's oom_score_adj to %d (no CAP_SYS_RESOURCE here?): %v", adj, err)
		return
	}
	t.Cleanup(func() { _ = os.WriteFile("/proc/self/oom_score_adj", []byte(old), 0) })
}

// TestPodLimitsAndOOMScore: the pod's cgroup holds its CPU quota and memory limit, and a
// container's processes, its init and what exec runs in it, get the OOM score adjustment
// the node asked for, not that of the process that started them (gantry's, which is low).
func TestPodLimitsAndOOMScore(t *testing.T) {
	m := newTestManager(t, testOptions(t))
	setOwnOOMScoreAdj(t, -999)
	layer := testLayer(t)
	sb := createPod(t, m, PodSpec{ID: "limits", Name: "limits", CPUMillis: 1000, MemoryBytes: 1 << 30})
	pod := m.cgroupPath(sb.ID, "")
	if got := readTrimmed(t, filepath.Join(m.cgroups.byController["memory"], pod, "memory.limit_in_bytes")); got != strconv.Itoa(1<<30) {
		t.Errorf("pod memory.limit_in_bytes = %s; want %d", got, 1<<30)
	}
	if got := readTrimmed(t, filepath.Join(m.cgroups.byController["cpu"], pod, "cpu.cfs_quota_us")); got != "100000" {
		t.Errorf("pod cpu.cfs_quota_us = %s; want 100000 (one CPU of a 100 ms period)", got)
	}

	// -997 is a Guaranteed pod's; a host without CAP_SYS_RESOURCE raises it to gantry's own.
	for _, adj := range []int{1000, -997} {
		name := "adj" + strings.ReplaceAll(strconv.Itoa(adj), "-", "m")
		want := strconv.Itoa(max(adj, m.minOOMScoreAdj))
		startContainer(t, m, sb.ID, ContainerSpec{Name: name, Layers: []string{layer}, Args: []string{bin("probe"), "stubborn"}, OOMScoreAdj: adj})
		st, err := m.ContainerStatus(context.Background(), sb.ID, name)
		if err != nil || !st.Running {
			t.Fatalf("status %+v, %v; want running", st, err)
		}
		if got := readTrimmed(t, fmt.Sprintf("/proc/%d/oom_score_adj", st.Pid)); got != want {
			t.Errorf("asked for %d: the container's init has oom_score_adj %s; want %s", adj, got, want)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var out, errOut bytes.Buffer
		code, err := m.Exec(ctx, sb.ID, name, []string{bin("probe"), "read", "/proc/self/oom_score_adj"}, nil, &out, &errOut, false)
		cancel()
		if err != nil || code != 0 {
			t.Fatalf("exec: %d, %v: %s", code, err, errOut.String())
		}
		if got := strings.TrimSpace(out.String()); got != want {
			t.Errorf("asked for %d: a process exec runs in the container has oom_score_adj %s; want %s", adj, got, want)
		}
	}
}
