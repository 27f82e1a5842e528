package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/internal/node"
	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/testenv"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// containerPid is the host pid of a running container of the pod.
func containerPid(t *testing.T, env *testenv.Env, pod *corev1.Pod, name string) int {
	t.Helper()
	infos, err := env.Server.Sandboxes.Sandboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range infos {
		if info.ID != string(pod.UID) {
			continue
		}
		for _, c := range info.Containers {
			if c.Name == name && c.Running {
				return c.Pid
			}
		}
	}
	t.Fatalf("no running container %s in pod %s's sandbox", name, pod.Name)
	return 0
}

// cgroupDir is the directory of pid's cgroup in the v1 hierarchy of controller.
func cgroupDir(t *testing.T, pid int, controller string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == controller {
				return filepath.Join("/sys/fs/cgroup", f[1], f[2])
			}
		}
	}
	t.Fatalf("pid %d has no %s cgroup", pid, controller)
	return ""
}

func readInt(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}

// TestDefaultPodLimitsAndOOMScores: a pod that sets no requests or limits still has a
// finite memory limit and CPU quota on its pod cgroup (the node's defaults), its process is
// the host OOM killer's first choice (oom_score_adj 1000, a BestEffort pod's), and gantry's
// own is the kubelet's -999.
func TestDefaultPodLimitsAndOOMScores(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	pod := podWith("unlimited", corev1.Container{Name: "hello", Image: env.Image(t, "hello")})
	createPod(t, env, ns, pod)
	pod = waitPod(t, env, ns, "unlimited", "running", 90*time.Second, running)
	pid := containerPid(t, env, pod, "hello")

	// The container's cgroup is the pod's child: the pod's limits are on its parent.
	memory := filepath.Dir(cgroupDir(t, pid, "memory"))
	cpu := filepath.Dir(cgroupDir(t, pid, "cpu"))
	if got, want := readInt(t, filepath.Join(memory, "memory.limit_in_bytes")), node.DefaultPodLimits.MemoryBytes; got != want {
		t.Errorf("the pod cgroup's memory.limit_in_bytes = %d; want %d (the default pod limit)", got, want)
	}
	quota, period := readInt(t, filepath.Join(cpu, "cpu.cfs_quota_us")), readInt(t, filepath.Join(cpu, "cpu.cfs_period_us"))
	if quota <= 0 || quota*1000/period != node.DefaultPodLimits.CPUMillis {
		t.Errorf("the pod cgroup's CPU quota is %d µs per %d µs; want %dm", quota, period, node.DefaultPodLimits.CPUMillis)
	}
	if got := readInt(t, fmt.Sprintf("/proc/%d/oom_score_adj", pid)); got != 1000 {
		t.Errorf("the BestEffort pod's process has oom_score_adj %d; want 1000", got)
	}

	// The node runs in this process.
	switch own := readInt(t, "/proc/self/oom_score_adj"); {
	case own == node.NodeOOMScoreAdj:
	case !hasCapSysResource(t):
		t.Logf("gantry's oom_score_adj is %d, not %d: without CAP_SYS_RESOURCE the kernel refuses to lower it", own, node.NodeOOMScoreAdj)
	default:
		t.Errorf("gantry's oom_score_adj is %d; want %d", own, node.NodeOOMScoreAdj)
	}
}

// hasCapSysResource reports whether this process may lower OOM score adjustments.
func hasCapSysResource(t *testing.T) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<unix.CAP_SYS_RESOURCE) != 0
		}
	}
	return false
}

// TestRevisionPodSizesTheQueueProxyApart: a revision pod without limits gets the default
// CPU for its user container and as much again for its queue-proxy, each held to its part
// by its own cgroup, as Knative sizes the sidecar apart from the app: the proxy does about
// as much work per request as the app and must not take it from the app's share.
func TestRevisionPodSizesTheQueueProxyApart(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	readyService(t, env, helloService(env, t, ns, "apart"))
	pods, err := env.Client.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: servingv1.RevisionLabelKey + "=apart-00001"})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("the revision's pods: %v (%d)", err, len(pods.Items))
	}
	pod := &pods.Items[0]
	quota := func(dir string) int64 {
		q, period := readInt(t, filepath.Join(dir, "cpu.cfs_quota_us")), readInt(t, filepath.Join(dir, "cpu.cfs_period_us"))
		if q <= 0 {
			return q
		}
		return q * 1000 / period
	}
	def := node.DefaultPodLimits.CPUMillis
	user := cgroupDir(t, containerPid(t, env, pod, pod.Spec.Containers[0].Name), "cpu")
	qp := cgroupDir(t, containerPid(t, env, pod, contract.ContainerName), "cpu")
	for _, c := range []struct {
		what string
		dir  string
		want int64
	}{
		{"the pod's cgroup", filepath.Dir(user), 2 * def},
		{"the user container's cgroup", user, def},
		{"the queue-proxy's cgroup", qp, def},
	} {
		if got := quota(c.dir); got != c.want {
			t.Errorf("%s has a CPU quota of %dm; want %dm", c.what, got, c.want)
		}
	}
}
