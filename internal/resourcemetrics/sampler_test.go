package resourcemetrics

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gantry-run/gantry/internal/sandbox"
)

var t0 = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// round feeds h one sample of pod "p" at t0+at: its user container at cpu, the pod at cpu
// plus 10 ms, memory as given.
func round(h *history, at time.Duration, cpu time.Duration, mem int64) {
	now := t0.Add(at)
	u := sandbox.PodUsage{Time: now,
		Pod:        sandbox.Usage{CPU: cpu + 10*time.Millisecond, MemoryWorkingSet: mem + 1},
		Containers: map[string]sandbox.Usage{"user-container": {CPU: cpu, MemoryWorkingSet: mem}},
	}
	h.observe(now,
		map[types.UID]metav1.ObjectMeta{"uid": {Namespace: "ns", Name: "p", Labels: map[string]string{"app": "x"}}},
		map[types.UID]sandbox.PodUsage{"uid": u},
		&sandbox.Usage{CPU: 4 * cpu, MemoryWorkingSet: 100 * mem})
}

func TestCPURateOverTheWindow(t *testing.T) {
	h := newHistory(15 * time.Second)
	round(h, 0, 0, 1<<20)
	if got := h.podMetrics(); len(got) != 0 {
		t.Fatalf("metrics from one sample: %+v, want none", got)
	}
	// Half a core for 5 s, then a whole core.
	round(h, 5*time.Second, 2500*time.Millisecond, 2<<20)
	round(h, 10*time.Second, 7500*time.Millisecond, 3<<20)
	round(h, 15*time.Second, 12500*time.Millisecond, 4<<20)
	round(h, 20*time.Second, 17500*time.Millisecond, 5<<20)

	pods := h.podMetrics()
	if len(pods) != 1 {
		t.Fatalf("%d pod metrics, want 1", len(pods))
	}
	m := pods[0]
	// The window ends at the newest sample (20 s) and starts 15 s before: 15 s of CPU in 15 s.
	if m.Timestamp.Time != t0.Add(20*time.Second) || m.Window.Duration != 15*time.Second {
		t.Errorf("timestamp %v, window %v; want t0+20s, 15s", m.Timestamp, m.Window)
	}
	if m.Name != "p" || m.Namespace != "ns" || m.Labels["app"] != "x" || m.Kind != "PodMetrics" {
		t.Errorf("metadata %+v %+v", m.TypeMeta, m.ObjectMeta)
	}
	if len(m.Containers) != 1 || m.Containers[0].Name != "user-container" {
		t.Fatalf("containers %+v, want user-container", m.Containers)
	}
	u := m.Containers[0].Usage
	if got := u.Cpu().MilliValue(); got != 1000 {
		t.Errorf("cpu %dm, want 1000m", got)
	}
	if got := u.Memory().Value(); got != 5<<20 {
		t.Errorf("memory %d, want the newest working set %d", got, 5<<20)
	}
	// Samples older than the window's start are dropped.
	if n := len(h.pods["uid"].samples); n != 4 {
		t.Errorf("%d samples kept, want 4 (t0+5s … t0+20s)", n)
	}

	node, ok := h.nodeMetrics("gantry")
	if !ok || node.Name != "gantry" || node.Usage.Cpu().MilliValue() != 4000 || node.Usage.Memory().Value() != 500<<20 {
		t.Errorf("node metrics %+v (ok %v), want 4 cores and 500 MiB", node, ok)
	}
}

func TestARestartedContainerIsLeftOutUntilItHasARate(t *testing.T) {
	h := newHistory(15 * time.Second)
	round(h, 0, 10*time.Second, 1)
	round(h, 5*time.Second, time.Second, 1) // its counter started again
	if got := h.podMetrics(); len(got) != 0 {
		t.Errorf("metrics across a restart: %+v, want none", got)
	}
}

func TestAPodThatStoppedIsForgotten(t *testing.T) {
	h := newHistory(15 * time.Second)
	round(h, 0, 0, 1)
	round(h, 5*time.Second, time.Second, 1)
	h.observe(t0.Add(10*time.Second), nil, nil, nil)
	if got := h.podMetrics(); len(got) != 0 {
		t.Errorf("metrics of a pod no longer sampled: %+v", got)
	}
}
