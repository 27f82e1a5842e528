package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestGVisor: a sandbox whose runtime is runsc runs its container on gVisor's kernel (its
// /proc/version is not the host's), serves on the pod's address, runs exec, and stops and
// goes away like a runc one. It logs the time from create to the first answer beside
// runc's, sandboxes of each made in turn.
func TestGVisor(t *testing.T) {
	if _, err := exec.LookPath("runsc"); err != nil {
		t.Skip("gVisor's runsc is not installed (apt-get install runsc)")
	}
	m := newTestManager(t, testOptions(t))
	layer := testLayer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := m.CreateSandbox(ctx, PodSpec{ID: "gvisor-userns", Runtime: RuntimeRunsc, UserNamespace: true}); err == nil {
		t.Error("a runsc sandbox with the node's user namespace was made; want it refused")
	}

	sb := createPod(t, m, PodSpec{ID: "gvisor", Name: "gv", Runtime: RuntimeRunsc})
	startContainer(t, m, sb.ID, ContainerSpec{Name: "app", Layers: []string{layer}, Args: []string{bin("hello")}})
	get(t, fmt.Sprintf("http://%s:8080/", sb.IP), 20*time.Second)
	var out, errOut bytes.Buffer
	code, err := m.Exec(ctx, sb.ID, "app", []string{bin("probe"), "read", "/proc/version"}, nil, &out, &errOut, false)
	if err != nil || code != 0 {
		t.Fatalf("exec: %d, %v: %s", code, err, errOut.String())
	}
	if got, host := strings.TrimSpace(out.String()), readTrimmed(t, "/proc/version"); got == host || got == "" {
		t.Errorf("/proc/version in the container = %q; want gVisor's, not the host's", got)
	}
	// The container's seccomp filter applies inside gVisor too (--oci-seccomp).
	if r := runProbeSec(t, m, sb, ContainerSpec{Name: "sec"}); r.IOUringSetup != "EPERM" {
		t.Errorf("io_uring_setup under gVisor: %s; want EPERM from the default seccomp filter", r.IOUringSetup)
	}
	if err := m.StopContainer(ctx, sb.ID, "app", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if st, err := m.ContainerStatus(ctx, sb.ID, "app"); err != nil || st.Running || st.Reason != ReasonCompleted {
		t.Errorf("after a graceful stop: %+v, %v; want exited, Completed", st, err)
	}

	took := map[string][]time.Duration{}
	for i := range 5 {
		for _, rt := range []string{RuntimeRunc, RuntimeRunsc} {
			id := fmt.Sprintf("start-%d-%s", i, rt)
			start := time.Now()
			sb := createPod(t, m, PodSpec{ID: id, Name: id, Runtime: rt})
			startContainer(t, m, id, ContainerSpec{Name: "app", Layers: []string{layer}, Args: []string{bin("hello")}})
			get(t, fmt.Sprintf("http://%s:8080/", sb.IP), 20*time.Second)
			took[rt] = append(took[rt], time.Since(start))
			if err := m.RemoveSandbox(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	for rt, ds := range took {
		slices.Sort(ds)
		t.Logf("runtime %q: create to first answer p50 %v (of %d)", rt, ds[len(ds)/2], len(ds))
	}
}
