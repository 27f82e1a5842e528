package node

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"github.com/gantry-run/gantry/internal/image"
)

// The results of an image pull (gantry_node_image_pulls_total's result label).
const (
	pullPulled = "pulled" // downloaded and unpacked, in part at least
	pullCached = "cached" // the store had it all
	pullFailed = "failed"
)

// The causes of an eviction (gantry_node_evictions_total's reason label). The node evicts
// for ephemeral storage only: memory is held per pod by its cgroup, whose OOM killer ends a
// container past its limit, and the node reports no memory pressure (see register.go).
const (
	// evictStorageLimit: the pod outgrew its ephemeral-storage limit (a serverless pod,
	// its provisioned ephemeral storage).
	evictStorageLimit = "ephemeral_storage_limit"
	// evictDiskPressure: the data dir's filesystem fell below its reserve, and the pod used
	// most ephemeral storage on the node (checkDisk).
	evictDiskPressure = "disk_pressure"
)

// podPhases are the phases gantry_node_pods has a series for, zero or not.
var podPhases = []corev1.PodPhase{corev1.PodPending, corev1.PodRunning, corev1.PodSucceeded, corev1.PodFailed}

// metrics are the node's Prometheus metrics (Options.Registerer). The node of no Registerer
// has none: a nil *metrics observes nothing, and costs a nil check.
type metrics struct {
	startDuration prometheus.Histogram
	pulls         *prometheus.CounterVec
	pullDuration  *prometheus.HistogramVec
	evictions     *prometheus.CounterVec
	pods          *podsCollector
}

// newMetrics returns the node's metrics; phases lists, when scraped, the phase of every pod
// the node runs.
func newMetrics(phases func() []corev1.PodPhase) *metrics {
	m := &metrics{
		startDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gantry_node_sandbox_start_duration_seconds",
			Help: "Time from the node taking a pod to all its containers started: the sandbox, volumes, image pulls, init containers and container starts. Pods whose containers the node adopted from an earlier run are not counted.",
			// From a warm start with cached images (tens of milliseconds) to a slow pull.
			Buckets: []float64{0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}),
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gantry_node_image_pulls_total",
			Help: "Image pulls for pods' containers, by result: pulled (layers downloaded), cached (the store had the image) or failed.",
		}, []string{"result"}),
		pullDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gantry_node_image_pull_duration_seconds",
			Help:    "Time an image pull for a pod's container took, by result (pulled, cached or failed).",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"result"}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gantry_node_evictions_total",
			Help: "Pods the node evicted, by reason: ephemeral_storage_limit (the pod outgrew its limit) or disk_pressure (the data dir's filesystem fell below its reserve).",
		}, []string{"reason"}),
		pods: &podsCollector{
			desc:   prometheus.NewDesc("gantry_node_pods", "Pods the node runs, by the phase it reports.", []string{"phase"}, nil),
			phases: phases,
		},
	}
	// Every result and reason has a series from the start, so a rate over them is defined.
	for _, r := range []string{pullPulled, pullCached, pullFailed} {
		m.pulls.WithLabelValues(r)
	}
	for _, r := range []string{evictStorageLimit, evictDiskPressure} {
		m.evictions.WithLabelValues(r)
	}
	return m
}

// register adds the metrics to r.
func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.startDuration, m.pulls, m.pullDuration, m.evictions, m.pods} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// podStarted observes the start of a pod whose containers all started took.
func (m *metrics) podStarted(took time.Duration) {
	if m == nil {
		return
	}
	m.startDuration.Observe(took.Seconds())
}

// pulled counts an image pull of result that took.
func (m *metrics) pulled(result string, took time.Duration) {
	if m == nil {
		return
	}
	m.pulls.WithLabelValues(result).Inc()
	m.pullDuration.WithLabelValues(result).Observe(took.Seconds())
}

// evicted counts an eviction for reason.
func (m *metrics) evicted(reason string) {
	if m == nil {
		return
	}
	m.evictions.WithLabelValues(reason).Inc()
}

// pullResult is the result label of a pull that returned img and err.
func pullResult(img *image.Image, err error) string {
	switch {
	case err != nil:
		return pullFailed
	case img.Cached:
		return pullCached
	default:
		return pullPulled
	}
}

// podsCollector counts, at each scrape, the pods the node runs by phase: the workers are
// the truth, so the gauge cannot drift from them.
type podsCollector struct {
	desc   *prometheus.Desc
	phases func() []corev1.PodPhase
}

func (c *podsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *podsCollector) Collect(ch chan<- prometheus.Metric) {
	for phase, n := range countPhases(c.phases()) {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), string(phase))
	}
}

// countPhases counts phases by phase, with a zero for every one of podPhases; an empty
// phase (a pod the node has not reported on yet) counts as Pending.
func countPhases(phases []corev1.PodPhase) map[corev1.PodPhase]int {
	out := make(map[corev1.PodPhase]int, len(podPhases))
	for _, p := range podPhases {
		out[p] = 0
	}
	for _, p := range phases {
		if p == "" {
			p = corev1.PodPending
		}
		out[p]++
	}
	return out
}
