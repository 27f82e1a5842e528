package resourcemetrics

import (
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	"github.com/gantry-run/gantry/internal/sandbox"
)

// Defaults of the sampler.
const (
	// DefaultInterval is how often the cgroups are read.
	DefaultInterval = 5 * time.Second
	// DefaultWindow is the span CPU rates are taken over; the HPA controller, which decides
	// every 15 s, then sees a figure at most one window old.
	DefaultWindow = 15 * time.Second
)

// pod is what the sampler keeps for one running pod: who it is and its recent samples,
// oldest first.
type pod struct {
	meta    metav1.ObjectMeta
	samples []sandbox.PodUsage
}

// history holds the recent samples of every pod and of the host, and turns them into
// metrics. It does no I/O: the caller feeds it samples with their times.
type history struct {
	window time.Duration

	mu   sync.Mutex
	pods map[types.UID]*pod
	host []sandbox.PodUsage // only Pod is set: the root cgroup
}

func newHistory(window time.Duration) *history {
	return &history{window: window, pods: map[types.UID]*pod{}}
}

// observe records one round of samples: the pods sampled (by UID, with their metadata) and
// the host's usage at now. A pod missing from the round is forgotten.
func (h *history) observe(now time.Time, metas map[types.UID]metav1.ObjectMeta, usages map[types.UID]sandbox.PodUsage, host *sandbox.Usage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for uid := range h.pods {
		if _, ok := usages[uid]; !ok {
			delete(h.pods, uid)
		}
	}
	for uid, u := range usages {
		p, ok := h.pods[uid]
		if !ok {
			p = &pod{}
			h.pods[uid] = p
		}
		p.meta = metas[uid]
		p.samples = h.trim(append(p.samples, u))
	}
	if host != nil {
		h.host = h.trim(append(h.host, sandbox.PodUsage{Time: now, Pod: *host}))
	}
}

// trim keeps the samples a rate over the window still needs: the newest, and the latest one
// at least a window older than it (and everything between).
func (h *history) trim(s []sandbox.PodUsage) []sandbox.PodUsage {
	newest := s[len(s)-1].Time
	keep := 0
	for i := range s {
		if !s[i].Time.After(newest.Add(-h.window)) {
			keep = i
		}
	}
	return append(s[:0], s[keep:]...)
}

// base is the sample a rate ending at the newest is taken from: the latest one at least a
// window older, else the oldest there is; ok is false with fewer than two samples.
func base(s []sandbox.PodUsage, window time.Duration) (sandbox.PodUsage, bool) {
	if len(s) < 2 {
		return sandbox.PodUsage{}, false
	}
	newest := s[len(s)-1].Time
	b := s[0]
	for _, x := range s[:len(s)-1] {
		if !x.Time.After(newest.Add(-window)) {
			b = x
		}
	}
	return b, newest.After(b.Time)
}

// usage is the ResourceList of a cgroup between two samples: CPU in cores (nanocores
// precision) averaged over the span, memory the newer working set. ok is false when the CPU
// counter went backwards (a container restarted with a new cgroup).
func usage(from, to sandbox.Usage, span time.Duration) (corev1.ResourceList, bool) {
	if to.CPU < from.CPU || span <= 0 {
		return nil, false
	}
	nanocores := int64(float64(to.CPU-from.CPU) / span.Seconds())
	return corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewScaledQuantity(nanocores, resource.Nano),
		corev1.ResourceMemory: *resource.NewQuantity(to.MemoryWorkingSet, resource.BinarySI),
	}, true
}

// podMetrics are the metrics of every pod with two samples or more, sorted by nothing in
// particular.
func (h *history) podMetrics() []metricsv1beta1.PodMetrics {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]metricsv1beta1.PodMetrics, 0, len(h.pods))
	for _, p := range h.pods {
		if m, ok := podMetrics(p, h.window); ok {
			out = append(out, m)
		}
	}
	return out
}

// podMetrics is one pod's metrics: each container that has a rate over the window. A pod
// without any is left out, as metrics-server leaves out pods it has no figures for.
func podMetrics(p *pod, window time.Duration) (metricsv1beta1.PodMetrics, bool) {
	b, ok := base(p.samples, window)
	if !ok {
		return metricsv1beta1.PodMetrics{}, false
	}
	newest := p.samples[len(p.samples)-1]
	span := newest.Time.Sub(b.Time)
	m := metricsv1beta1.PodMetrics{
		TypeMeta: metav1.TypeMeta{Kind: "PodMetrics", APIVersion: metricsv1beta1.SchemeGroupVersion.String()},
		ObjectMeta: metav1.ObjectMeta{
			Name: p.meta.Name, Namespace: p.meta.Namespace, Labels: p.meta.Labels,
			CreationTimestamp: metav1.NewTime(newest.Time.Truncate(time.Second)),
		},
		Timestamp: metav1.NewTime(newest.Time),
		Window:    metav1.Duration{Duration: span},
	}
	for name, to := range newest.Containers {
		from, ok := b.Containers[name]
		if !ok {
			continue
		}
		if u, ok := usage(from, to, span); ok {
			m.Containers = append(m.Containers, metricsv1beta1.ContainerMetrics{Name: name, Usage: u})
		}
	}
	if len(m.Containers) == 0 {
		return metricsv1beta1.PodMetrics{}, false
	}
	slices.SortFunc(m.Containers, func(a, b metricsv1beta1.ContainerMetrics) int { return strings.Compare(a.Name, b.Name) })
	return m, true
}

// nodeMetrics is the node's metrics, from the host's samples; ok is false before there are two.
func (h *history) nodeMetrics(name string) (metricsv1beta1.NodeMetrics, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, ok := base(h.host, h.window)
	if !ok {
		return metricsv1beta1.NodeMetrics{}, false
	}
	newest := h.host[len(h.host)-1]
	span := newest.Time.Sub(b.Time)
	u, ok := usage(b.Pod, newest.Pod, span)
	if !ok {
		return metricsv1beta1.NodeMetrics{}, false
	}
	return metricsv1beta1.NodeMetrics{
		TypeMeta:   metav1.TypeMeta{Kind: "NodeMetrics", APIVersion: metricsv1beta1.SchemeGroupVersion.String()},
		ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(newest.Time.Truncate(time.Second))},
		Timestamp:  metav1.NewTime(newest.Time),
		Window:     metav1.Duration{Duration: span},
		Usage:      u,
	}, true
}
