package queue

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gantry-run/gantry/internal/queue/contract"
)

// Request metrics on the user metrics port, with the names and labels Knative's queue-proxy
// exported through OpenCensus: revision_request_count and revision_request_latencies for every
// request the queue-proxy answered (queueing and its own 503s and 504s included),
// revision_app_request_count and revision_app_request_latencies for those the user container
// answered, and revision_queue_depth (admitted requests, running and waiting) when the
// concurrency is limited. Latencies are in milliseconds.
const (
	MetricRequestCount        = "revision_request_count"
	MetricRequestLatencies    = "revision_request_latencies"
	MetricAppRequestCount     = "revision_app_request_count"
	MetricAppRequestLatencies = "revision_app_request_latencies"
	MetricQueueDepth          = "revision_queue_depth"
)

// latencyBucketsMS are Knative's request latency buckets.
var latencyBucketsMS = []float64{5, 10, 20, 40, 60, 80, 100, 150, 200, 250, 300, 350, 400, 450, 500, 600,
	700, 800, 900, 1000, 2000, 5000, 10000, 20000, 50000, 100000}

// requestMetrics is the registry of the user metrics port.
type requestMetrics struct {
	registry   *prometheus.Registry
	requests   *statusMetrics
	app        *statusMetrics
	queueDepth prometheus.Gauge // nil without a breaker
}

func newRequestMetrics(c *Config, limited bool) *requestMetrics {
	labels := prometheus.Labels{
		"namespace_name":     c.Namespace,
		"service_name":       c.Service,
		"configuration_name": c.Configuration,
		"revision_name":      c.Revision,
		"pod_name":           c.Pod,
		"container_name":     contract.ContainerName,
	}
	m := &requestMetrics{
		registry: prometheus.NewRegistry(),
		requests: newStatusMetrics(MetricRequestCount, "The number of requests that are routed to queue-proxy",
			MetricRequestLatencies, "The response time in millisecond", labels),
		app: newStatusMetrics(MetricAppRequestCount, "The number of requests that are routed to user-container",
			MetricAppRequestLatencies, "The response time in millisecond", labels),
	}
	m.registry.MustRegister(m.requests.count, m.requests.latency, m.app.count, m.app.latency)
	if limited {
		m.queueDepth = prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        MetricQueueDepth,
			Help:        "The current number of items in the serving and waiting queue, or not reported if unlimited concurrency.",
			ConstLabels: labels,
		})
		m.registry.MustRegister(m.queueDepth)
	}
	return m
}

func (m *requestMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// statusMetrics is a count and a latency histogram by response code. The pair for each code
// is looked up once and kept, so recording a request takes no map lookup and no allocation.
type statusMetrics struct {
	count   *prometheus.CounterVec
	latency *prometheus.HistogramVec
	byCode  [600]atomic.Pointer[codeMetrics]
}

type codeMetrics struct {
	count   prometheus.Counter
	latency prometheus.Observer
}

func newStatusMetrics(countName, countHelp, latencyName, latencyHelp string, labels prometheus.Labels) *statusMetrics {
	vars := []string{"response_code", "response_code_class"}
	return &statusMetrics{
		count: prometheus.NewCounterVec(prometheus.CounterOpts{Name: countName, Help: countHelp, ConstLabels: labels}, vars),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: latencyName, Help: latencyHelp, ConstLabels: labels, Buckets: latencyBucketsMS,
		}, vars),
	}
}

func (s *statusMetrics) record(code int, d time.Duration) {
	if code < 100 || code >= len(s.byCode) {
		code = http.StatusInternalServerError
	}
	m := s.byCode[code].Load()
	if m == nil {
		c, class := strconv.Itoa(code), strconv.Itoa(code/100)+"xx"
		m = &codeMetrics{count: s.count.WithLabelValues(c, class), latency: s.latency.WithLabelValues(c, class)}
		s.byCode[code].Store(m)
	}
	m.count.Inc()
	m.latency.Observe(float64(d) / float64(time.Millisecond))
}

// metricsHandler records every request next answers into s; kubelet probes are left out.
func metricsHandler(s *statusMetrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isKubeletProbe(r) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			code := rec.code
			if p := recover(); p != nil {
				// A cut response keeps the status the client saw; anything else is a 500.
				if err, ok := p.(error); code == 0 || !ok || !errors.Is(err, http.ErrAbortHandler) {
					code = http.StatusInternalServerError
				}
				s.record(code, time.Since(start))
				panic(p)
			}
			if code == 0 {
				code = http.StatusOK
			}
			s.record(code, time.Since(start))
		}()
		next.ServeHTTP(rec, r)
	})
}

// statusRecorder remembers the status of a response and passes everything else through.
type statusRecorder struct {
	http.ResponseWriter
	code int // 0 until a final status was written
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(p)
}

func (r *statusRecorder) FlushError() error { return flush(r.ResponseWriter) }

func (r *statusRecorder) Flush() { _ = r.FlushError() }

// Hijack hands the connection over; the response counts as 101 Switching Protocols.
func (r *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil && r.code == 0 {
		r.code = http.StatusSwitchingProtocols
	}
	return c, rw, err
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// isKubeletProbe reports whether r is the kubelet probing through the serving port, as
// Knative recognises it: such requests bypass the breaker, the stats and the metrics.
func isKubeletProbe(r *http.Request) bool {
	if _, ok := r.Header["K-Kubelet-Probe"]; ok {
		return true
	}
	ua := r.Header["User-Agent"]
	return len(ua) > 0 && isProbeAgent(ua[0])
}

// isProbeAgent reports whether a User-Agent is the kubelet's prober.
func isProbeAgent(ua string) bool { return strings.HasPrefix(ua, "kube-probe/") }
