package activator

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// requestMetrics are the requests the activator served per revision, under the names and
// labels of Knative's queue-proxy metrics, which `gantry top` and dashboards read. The
// activator of no Registerer has none: a nil *requestMetrics observes nothing.
type requestMetrics struct {
	count   *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

var requestLabels = []string{"namespace_name", "service_name", "configuration_name", "revision_name", "response_code", "response_code_class"}

func newRequestMetrics() *requestMetrics {
	return &requestMetrics{
		count: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "revision_request_count",
			Help: "The number of requests served to the revision.",
		}, requestLabels),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "revision_request_latencies",
			Help: "The time from a request's arrival to its response's end, waiting for a pod included, in milliseconds.",
			// Knative's buckets for this histogram.
			Buckets: []float64{5, 10, 20, 40, 60, 80, 100, 150, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 900, 1000, 2000, 5000, 10000, 20000, 50000, 100000},
		}, requestLabels),
	}
}

func (m *requestMetrics) register(r prometheus.Registerer) error {
	if err := r.Register(m.count); err != nil {
		return err
	}
	return r.Register(m.latency)
}

// revision returns the request metrics of one revision: nil when m is nil.
func (m *requestMetrics) revision(namespace, service, configuration, revision string) *revisionMetrics {
	if m == nil {
		return nil
	}
	return &revisionMetrics{m: m, labels: [4]string{namespace, service, configuration, revision}}
}

// forget removes the series of the revision namespace/name, which is gone.
func (m *requestMetrics) forget(namespace, name string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"namespace_name": namespace, "revision_name": name}
	m.count.DeletePartialMatch(l)
	m.latency.DeletePartialMatch(l)
}

// revisionMetrics are one revision's series. The pair of the status it answered last is
// kept, so a request with the same status as the one before takes no lookup by labels and
// no allocation.
type revisionMetrics struct {
	m      *requestMetrics
	labels [4]string // namespace, service, configuration, revision
	last   atomic.Pointer[codeMetrics]
}

type codeMetrics struct {
	code    int
	count   prometheus.Counter
	latency prometheus.Observer
}

// observe counts one request of the revision that ended with code after took.
func (r *revisionMetrics) observe(code int, took time.Duration) {
	if r == nil {
		return
	}
	c := r.last.Load()
	if c == nil || c.code != code {
		s := strconv.Itoa(code)
		labels := append(r.labels[:], s, s[:1]+"xx")
		c = &codeMetrics{code: code, count: r.m.count.WithLabelValues(labels...), latency: r.m.latency.WithLabelValues(labels...)}
		r.last.Store(c)
	}
	c.count.Inc()
	c.latency.Observe(float64(took) / float64(time.Millisecond))
}

// statusWriter remembers the status a handler answered. Unwrap lets http.ResponseController
// reach the connection's Flush and Hijack, which streams and upgrades need.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
