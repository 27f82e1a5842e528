package integration

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gantry-run/gantry/internal/testenv"
)

// TestPodsRunInUserNamespaces: a pod that does not set hostUsers runs in a user namespace of
// its own: uid 0 inside is another uid outside (its /proc/<pid>/uid_map maps 0 to a host uid
// that is not 0), and a second pod's range is another. A pod that asks for hostUsers: true is
// refused, saying why.
func TestPodsRunInUserNamespaces(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	hostIDs := map[string]bool{}
	for _, name := range []string{"userns-a", "userns-b"} {
		createPod(t, env, ns, podWith(name, corev1.Container{Name: "hello", Image: env.Image(t, "hello")}))
	}
	for _, name := range []string{"userns-a", "userns-b"} {
		pod := waitPod(t, env, ns, name, "running", 90*time.Second, running)
		pid := containerPid(t, env, pod, "hello")
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", pid))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b))
		if len(f) != 3 || f[0] != "0" || f[1] == "0" {
			t.Fatalf("pod %s: uid_map %q; want uid 0 inside mapped to another host uid", name, b)
		}
		hostIDs[f[1]] = true
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(status), "\nUid:\t"+f[1]+"\t") {
			t.Errorf("pod %s: its process does not run as host uid %s", name, f[1])
		}
	}
	if len(hostIDs) != 2 {
		t.Errorf("both pods map uid 0 to host uid %v; want a range each", hostIDs)
	}

	yes := true
	refused := podWith("host-users", corev1.Container{Name: "hello", Image: env.Image(t, "hello")})
	refused.Spec.HostUsers = &yes
	createPod(t, env, ns, refused)
	p := waitPod(t, env, ns, "host-users", "failed", 60*time.Second, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if !strings.Contains(p.Status.Message, "spec.hostUsers") {
		t.Errorf("refused with %q; want the message to name spec.hostUsers", p.Status.Message)
	}
}
