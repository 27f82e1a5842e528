package node

import (
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestStorageEvictionReleasesStorage: a pod over its ephemeral-storage limit is evicted and
// its writable layers and emptyDirs are freed.
func TestStorageEvictionReleasesStorage(t *testing.T) {
	pod := testPod(corev1.Container{Name: "app", Image: "registry.test/app"})
	n, _, sb, clk := testNode(t, pod)
	w := newWorker(n, pod)
	step(t, w)
	sb.Calls()
	sb.usage = defaultStorage + 1
	clk.Step(storagePeriodIdle)
	step(t, w)
	if w.pod.Status.Phase != corev1.PodFailed || w.pod.Status.Reason != reasonEvicted {
		t.Fatalf("phase %s, reason %q; want Failed, Evicted", w.pod.Status.Phase, w.pod.Status.Reason)
	}
	if calls := sb.Calls(); !slices.Contains(calls, "release storage") {
		t.Errorf("calls %v; want the evicted pod's storage released", calls)
	}
}

// TestDiskPressure: when the data dir's filesystem has less than its reserve free, the pod
// that uses most ephemeral storage is evicted (and its storage released), one a check, and
// images are not pulled; with the space back, they are.
func TestDiskPressure(t *testing.T) {
	big := testPod(corev1.Container{Name: "app", Image: "registry.test/app"})
	next := testPod(corev1.Container{Name: "app", Image: "registry.test/app"})
	next.UID, next.Name = "uid-2", "q"
	n, _, sb, _ := testNode(t, big, next)
	free := int64(100 << 20)
	n.freeBytes = func(string) (int64, error) { return free, nil }
	w := newWorker(n, big)
	n.workers = map[types.UID]*worker{big.UID: w}
	step(t, w)
	sb.usage = 5 << 30
	sb.Calls()

	n.checkDisk(context.Background())
	if !n.diskPressure.Load() {
		t.Fatal("100 MiB free of a 2 GiB reserve is not disk pressure")
	}
	step(t, w)
	if w.pod.Status.Phase != corev1.PodFailed || w.pod.Status.Reason != reasonEvicted ||
		!strings.Contains(w.pod.Status.Message, "low on resource: ephemeral-storage") {
		t.Fatalf("phase %s, reason %q, message %q; want Failed, Evicted for ephemeral-storage", w.pod.Status.Phase, w.pod.Status.Reason, w.pod.Status.Message)
	}
	if calls := sb.Calls(); !slices.Contains(calls, "release storage") {
		t.Errorf("calls %v; want the evicted pod's storage released", calls)
	}

	// A new pod's image is not pulled while the pressure lasts.
	w2 := newWorker(n, next)
	step(t, w2)
	st := w2.pod.Status.ContainerStatuses
	if len(st) != 1 || st[0].State.Waiting == nil || st[0].State.Waiting.Reason != "ErrImagePull" ||
		!strings.Contains(st[0].State.Waiting.Message, "disk pressure") {
		t.Fatalf("container status %+v; want waiting with ErrImagePull for disk pressure", st)
	}
	if calls := sb.Calls(); slices.Contains(calls, "start app") {
		t.Errorf("calls %v: a container started under disk pressure", calls)
	}

	free = 10 << 30
	n.checkDisk(context.Background())
	if n.diskPressure.Load() || n.pullRefusal() != "" {
		t.Error("10 GiB free is still disk pressure")
	}
}
