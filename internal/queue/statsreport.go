package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The autoscaler's stats, served as Prometheus text on the metrics port with the names of
// Knative's queue-proxy Prometheus stats reporter. Rates are per second over the last
// reporting period; concurrencies are averages over it. StatPeakConcurrency is Gantry's
// addition.
const (
	StatRequestsPerSecond          = "queue_requests_per_second"
	StatProxiedRequestsPerSecond   = "queue_proxied_operations_per_second"
	StatAverageConcurrency         = "queue_average_concurrent_requests"
	StatAverageProxiedConcurrency  = "queue_average_proxied_concurrent_requests"
	StatPeakConcurrency            = "queue_peak_concurrent_requests"
	StatProcessUptime              = "process_uptime"
	statPodLabel                   = "destination_pod"
	statsReportingPeriod           = time.Second
	maxStatsBody                   = 1 << 20
	statsContentTypeTextPrometheus = "text/plain"
)

// Stat is one pod's report to the autoscaler, as read from its metrics port. The totals count
// every request; the proxied figures count those the activator forwarded (contract.ProxyHeader
// = contract.ActivatorProxy). The activator reports those itself, so a pod's own demand is the
// total minus the proxied part, as Knative's metric collector computes it.
type Stat struct {
	PodName                   string
	AverageConcurrency        float64
	AverageProxiedConcurrency float64
	PeakConcurrency           float64
	RequestsPerSecond         float64
	ProxiedRequestsPerSecond  float64
	ProcessUptime             float64 // seconds
}

// statsReporter holds the last report and serves it.
type statsReporter struct {
	registry *prometheus.Registry
	start    time.Time
	period   time.Duration

	requests, proxiedRequests, concurrency, proxiedConcurrency, peak, uptime prometheus.Gauge
}

func newStatsReporter(c *Config, start time.Time, period time.Duration) *statsReporter {
	labels := prometheus.Labels{
		"destination_namespace":     c.Namespace,
		"destination_configuration": c.Configuration,
		"destination_revision":      c.Revision,
		statPodLabel:                c.Pod,
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels})
	}
	r := &statsReporter{
		registry:           prometheus.NewRegistry(),
		start:              start,
		period:             period,
		requests:           gauge(StatRequestsPerSecond, "Number of requests per second"),
		proxiedRequests:    gauge(StatProxiedRequestsPerSecond, "Number of proxied requests per second"),
		concurrency:        gauge(StatAverageConcurrency, "Number of requests currently being handled by this pod"),
		proxiedConcurrency: gauge(StatAverageProxiedConcurrency, "Number of proxied requests currently being handled by this pod"),
		peak:               gauge(StatPeakConcurrency, "Most requests handled by this pod at once during the last period"),
		uptime:             gauge(StatProcessUptime, "The number of seconds that the process has been up"),
	}
	r.registry.MustRegister(r.requests, r.proxiedRequests, r.concurrency, r.proxiedConcurrency, r.peak, r.uptime)
	return r
}

// report publishes one window's report, closed at now.
func (r *statsReporter) report(rep Report, now time.Time) {
	secs := r.period.Seconds()
	r.requests.Set(float64(rep.RequestCount) / secs)
	r.proxiedRequests.Set(float64(rep.ProxiedRequestCount) / secs)
	r.concurrency.Set(rep.AverageConcurrency)
	r.proxiedConcurrency.Set(rep.AverageProxiedConcurrency)
	r.peak.Set(float64(rep.PeakConcurrency))
	r.uptime.Set(now.Sub(r.start).Seconds())
}

func (r *statsReporter) handler() http.Handler {
	return promhttp.HandlerFor(r.registry, promhttp.HandlerOpts{})
}

// ErrNoStats is the parse of a scrape that holds none of the queue-proxy's stats.
var ErrNoStats = errors.New("no queue-proxy stats")

// ParseStats reads a pod's stats from the Prometheus text its metrics port serves.
func ParseStats(r io.Reader) (Stat, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(io.LimitReader(r, maxStatsBody))
	if err != nil {
		return Stat{}, fmt.Errorf("parsing queue-proxy stats: %w", err)
	}
	var s Stat
	found := false
	for name, dst := range map[string]*float64{
		StatRequestsPerSecond:         &s.RequestsPerSecond,
		StatProxiedRequestsPerSecond:  &s.ProxiedRequestsPerSecond,
		StatAverageConcurrency:        &s.AverageConcurrency,
		StatAverageProxiedConcurrency: &s.AverageProxiedConcurrency,
		StatPeakConcurrency:           &s.PeakConcurrency,
		StatProcessUptime:             &s.ProcessUptime,
	} {
		f := families[name]
		if f == nil || len(f.GetMetric()) == 0 {
			continue
		}
		m := f.GetMetric()[0]
		*dst = gaugeValue(m)
		found = true
		for _, l := range m.GetLabel() {
			if l.GetName() == statPodLabel {
				s.PodName = l.GetValue()
			}
		}
	}
	if !found {
		return Stat{}, ErrNoStats
	}
	return s, nil
}

func gaugeValue(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	}
	return 0
}

// ScrapeStats fetches and parses the stats a queue-proxy serves at url (http://<pod
// IP>:9090/metrics).
func ScrapeStats(ctx context.Context, client *http.Client, url string) (Stat, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Stat{}, fmt.Errorf("scraping %s: %w", url, err)
	}
	req.Header.Set("Accept", statsContentTypeTextPrometheus)
	resp, err := client.Do(req)
	if err != nil {
		return Stat{}, fmt.Errorf("scraping %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Stat{}, fmt.Errorf("scraping %s: status %d", url, resp.StatusCode)
	}
	s, err := ParseStats(resp.Body)
	if err != nil {
		return Stat{}, fmt.Errorf("scraping %s: %w", url, err)
	}
	return s, nil
}
