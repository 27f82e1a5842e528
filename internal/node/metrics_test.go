package node

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/gantry-run/gantry/internal/image"
)

func TestCountPhases(t *testing.T) {
	zero := map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodRunning: 0, corev1.PodSucceeded: 0, corev1.PodFailed: 0}
	for _, tc := range []struct {
		name   string
		phases []corev1.PodPhase
		want   map[corev1.PodPhase]int
	}{
		{"no pods: every phase zero", nil, zero},
		{"an unreported pod is pending", []corev1.PodPhase{"", corev1.PodPending, corev1.PodRunning, corev1.PodRunning, corev1.PodFailed},
			map[corev1.PodPhase]int{corev1.PodPending: 2, corev1.PodRunning: 2, corev1.PodSucceeded: 0, corev1.PodFailed: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, countPhases(tc.phases)); diff != "" {
				t.Errorf("countPhases (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPullResult(t *testing.T) {
	for _, tc := range []struct {
		img  *image.Image
		err  error
		want string
	}{
		{&image.Image{}, nil, pullPulled},
		{&image.Image{Cached: true}, nil, pullCached},
		{nil, errors.New("manifest unknown"), pullFailed},
	} {
		if got := pullResult(tc.img, tc.err); got != tc.want {
			t.Errorf("pullResult(%+v, %v) = %q, want %q", tc.img, tc.err, got, tc.want)
		}
	}
}

// slowImages pulls every image in took of the fake clock, from the cache when cached.
type slowImages struct {
	clk    *clocktesting.FakeClock
	took   time.Duration
	cached bool
	err    error
}

func (s *slowImages) Pull(_ context.Context, ref string) (*image.Image, error) {
	s.clk.Step(s.took)
	if s.err != nil {
		return nil, s.err
	}
	return &image.Image{Ref: ref, DigestRef: ref + "@sha256:0123", Layers: []string{"/layers/0"}, Cached: s.cached}, nil
}

func (*slowImages) GC(context.Context, []string) (image.GCResult, error) {
	return image.GCResult{}, nil
}

// metered gives n a registry and its metrics, as New does with a Registerer.
func metered(t *testing.T, n *Node) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	n.metrics = newMetrics(n.workerPhases)
	if err := n.metrics.register(reg); err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestNodeMetrics: a pod whose image takes 2 s to pull starts in 2 s, one pull counted as
// pulled, the pod counted Running; evicted for its storage, it is counted Failed and its
// eviction by reason. Every family passes the Prometheus linter.
func TestNodeMetrics(t *testing.T) {
	pod := testPod(corev1.Container{Name: "app", Image: "registry.test/app"})
	n, _, sb, clk := testNode(t, pod)
	images := &slowImages{clk: clk, took: 2 * time.Second}
	n.opts.Images = images
	reg := metered(t, n)
	w := newWorker(n, pod)
	n.workers = map[types.UID]*worker{pod.UID: w}

	step(t, w)
	if got := testutil.ToFloat64(n.metrics.pulls.WithLabelValues(pullPulled)); got != 1 {
		t.Errorf("pulls{result=pulled} = %v, want 1", got)
	}
	wantStart := `
# HELP gantry_node_pods Pods the node runs, by the phase it reports.
# TYPE gantry_node_pods gauge
gantry_node_pods{phase="Failed"} 0
gantry_node_pods{phase="Pending"} 0
gantry_node_pods{phase="Running"} 1
gantry_node_pods{phase="Succeeded"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(wantStart), "gantry_node_pods"); err != nil {
		t.Error(err)
	}
	h := histogram(t, reg, "gantry_node_sandbox_start_duration_seconds")
	if h.GetSampleCount() != 1 || h.GetSampleSum() != 2 {
		t.Errorf("start duration: %d samples, sum %v s; want 1 of 2 s (the pull's)", h.GetSampleCount(), h.GetSampleSum())
	}

	// Later syncs observe the start no more.
	sleep(w, clk)
	step(t, w)
	if got := histogram(t, reg, "gantry_node_sandbox_start_duration_seconds").GetSampleCount(); got != 1 {
		t.Errorf("start duration: %d samples after a second sync, want still 1", got)
	}

	sb.usage = defaultStorage + 1
	clk.Step(storagePeriodIdle)
	step(t, w)
	if got := testutil.ToFloat64(n.metrics.evictions.WithLabelValues(evictStorageLimit)); got != 1 {
		t.Errorf("evictions{reason=%s} = %v, want 1", evictStorageLimit, got)
	}
	if got := testutil.ToFloat64(n.metrics.evictions.WithLabelValues(evictDiskPressure)); got != 0 {
		t.Errorf("evictions{reason=%s} = %v, want 0", evictDiskPressure, got)
	}
	if got := phaseCount(t, reg, corev1.PodFailed); got != 1 {
		t.Errorf("gantry_node_pods{phase=Failed} = %v, want 1", got)
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(families).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestNodeMetricsPulls: a cached image and a failed pull are counted and timed by result.
func TestNodeMetricsPulls(t *testing.T) {
	pod := testPod(corev1.Container{Name: "app", Image: "registry.test/app"})
	n, _, _, clk := testNode(t, pod)
	images := &slowImages{clk: clk, took: 30 * time.Millisecond, err: errors.New("manifest unknown")}
	n.opts.Images = images
	reg := metered(t, n)
	w := newWorker(n, pod)
	step(t, w)
	if got := histogram(t, reg, "gantry_node_sandbox_start_duration_seconds").GetSampleCount(); got != 0 {
		t.Errorf("start duration: %d samples for a pod whose image failed, want 0", got)
	}
	images.err, images.cached = nil, true
	clk.Step(time.Minute) // past the back-off
	step(t, w)
	for result, want := range map[string]float64{pullPulled: 0, pullCached: 1, pullFailed: 1} {
		if got := testutil.ToFloat64(n.metrics.pulls.WithLabelValues(result)); got != want {
			t.Errorf("pulls{result=%s} = %v, want %v", result, got, want)
		}
	}
	if got := histogram(t, reg, "gantry_node_sandbox_start_duration_seconds").GetSampleCount(); got != 1 {
		t.Errorf("start duration: %d samples once the pod started, want 1", got)
	}
}

// TestNodeMetricsAdoptedPodNotTimed: a pod whose container runs already (the node
// restarted) is adopted, and its start is not observed.
func TestNodeMetricsAdoptedPodNotTimed(t *testing.T) {
	pod := testPod(corev1.Container{Name: "app", Image: "registry.test/app"})
	n, _, _, _ := testNode(t, pod)
	step(t, newWorker(n, pod)) // the earlier run starts the container
	reg := metered(t, n)
	step(t, newWorker(n, pod))
	if got := histogram(t, reg, "gantry_node_sandbox_start_duration_seconds").GetSampleCount(); got != 0 {
		t.Errorf("start duration: %d samples for an adopted pod, want 0", got)
	}
}

// TestNodeMetricsDiskPressureEviction: the pod checkDisk evicts is counted under
// disk_pressure.
func TestNodeMetricsDiskPressureEviction(t *testing.T) {
	pod := testPod(corev1.Container{Name: "app", Image: "registry.test/app"})
	n, _, sb, _ := testNode(t, pod)
	metered(t, n)
	n.freeBytes = func(string) (int64, error) { return 100 << 20, nil }
	w := newWorker(n, pod)
	n.workers = map[types.UID]*worker{pod.UID: w}
	step(t, w)
	sb.usage = 1 << 20
	n.checkDisk(context.Background())
	step(t, w)
	if got := testutil.ToFloat64(n.metrics.evictions.WithLabelValues(evictDiskPressure)); got != 1 {
		t.Errorf("evictions{reason=%s} = %v, want 1", evictDiskPressure, got)
	}
}

// TestNilMetrics: a node without a Registerer observes nothing, and does not fail for it.
func TestNilMetrics(t *testing.T) {
	var m *metrics
	m.podStarted(time.Second)
	m.pulled(pullPulled, time.Second)
	m.evicted(evictDiskPressure)
}

func histogram(t *testing.T, g prometheus.Gatherer, name string) interface {
	GetSampleCount() uint64
	GetSampleSum() float64
} {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("no histogram %s", name)
	return nil
}

func phaseCount(t *testing.T, g prometheus.Gatherer, phase corev1.PodPhase) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "gantry_node_pods" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "phase" && l.GetValue() == string(phase) {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no gantry_node_pods{phase=%q}", phase)
	return 0
}
