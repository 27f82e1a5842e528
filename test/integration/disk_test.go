package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/internal/sandbox"
	"github.com/gantry-run/gantry/internal/testenv"
)

// TestLogsRotatedAndCountedUntilEviction: a pod that prints 1 MiB a second has its log
// rotated by the node (at most 5 files, none much past 10 MiB) and, its logs counting
// towards its ephemeral storage, is evicted once they pass its 24 MiB limit, by what it writes
// in about a second, not more (the node measures a growing pod more often as it nears its
// limit).
func TestLogsRotatedAndCountedUntilEviction(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	pod := podWith("chatty", corev1.Container{
		Name: "chatty", Image: env.Image(t, "runtime"), Args: []string{"-log-kib-per-s", "1024"},
		Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceEphemeralStorage: resource.MustParse("24Mi")}},
	})
	createPod(t, env, ns, pod)
	pod = waitPod(t, env, ns, "chatty", "running", 90*time.Second, running)
	logPath := env.Server.Sandboxes.LogPath(string(pod.UID), "chatty")

	maxFiles, maxSize := 0, int64(0)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		files, _ := filepath.Glob(logPath + "*")
		maxFiles = max(maxFiles, len(files))
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil {
				maxSize = max(maxSize, fi.Size())
			}
		}
		p, err := env.Client.CoreV1().Pods(ns).Get(t.Context(), "chatty", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Status.Phase == corev1.PodFailed {
			if p.Status.Reason != "Evicted" {
				t.Fatalf("the pod failed with %q (%s); want Evicted", p.Status.Reason, p.Status.Message)
			}
			t.Logf("evicted: %s", p.Status.Message)
			m := regexp.MustCompile(`\(uses ([^)]+)\)`).FindStringSubmatch(p.Status.Message)
			if m == nil {
				t.Fatalf("the eviction message does not say what the pod used: %q", p.Status.Message)
			}
			used, err := resource.ParseQuantity(m[1])
			if err != nil {
				t.Fatalf("the eviction message's use %q: %v", m[1], err)
			}
			// 1 MiB a second, measured at least every second near the limit, plus slack
			// for a slow measurement on a busy machine.
			if lim := int64(24<<20 + 4<<20); used.Value() > lim {
				t.Errorf("evicted at %s; want at most %d bytes (its 24Mi limit and 4 s of its writes)", m[1], lim)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not evicted after 3 minutes of 1 MiB/s of logs; phase %s", p.Status.Phase)
		}
		time.Sleep(time.Second)
	}
	if maxFiles < 2 || maxFiles > sandbox.DefaultLogMaxFiles {
		t.Errorf("at most %d log files seen; want between 2 (rotated) and %d", maxFiles, sandbox.DefaultLogMaxFiles)
	}
	// The node rotates every 10 s: a log grows by 10 s of writes past 10 MiB at most.
	if limit := int64(sandbox.DefaultLogMaxBytes + 12<<20); maxSize > limit {
		t.Errorf("a log file reached %d bytes; want at most %d", maxSize, limit)
	}
}
