package dashboard

import (
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gantry-run/gantry/internal/kn"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
)

// Point is a service's figures at one moment. A NaN figure is one no source has (or, for
// the latencies, no request ended in the interval); it travels as null.
type Point struct {
	At int64 // Unix milliseconds
	// RPS is requests per second, P50 and P99 latencies in milliseconds, Concurrency the
	// autoscaler's stable in-flight average, Desired and Ready its pods.
	RPS, P50, P99, Concurrency, Desired, Ready float32
}

// MarshalJSON writes a point as a compact array: [at, rps, p50, p99, concurrency, desired,
// ready], null for a missing figure. The page reads this order.
func (p Point) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 64)
	b = append(b, '[')
	b = strconv.AppendInt(b, p.At, 10)
	for _, v := range [...]float32{p.RPS, p.P50, p.P99, p.Concurrency, p.Desired, p.Ready} {
		b = append(b, ',')
		if math.IsNaN(float64(v)) {
			b = append(b, "null"...)
			continue
		}
		b = strconv.AppendFloat(b, float64(v), 'f', -1, 32)
	}
	return append(b, ']'), nil
}

// idle reports whether a point says nothing happened: no requests, no pods.
func (p Point) idle() bool {
	zero := func(v float32) bool { return v == 0 || math.IsNaN(float64(v)) }
	return zero(p.RPS) && zero(p.Concurrency) && zero(p.Desired) && zero(p.Ready)
}

// ring keeps a service's last points, oldest first when read.
type ring struct {
	points []Point
	next   int
	full   bool
}

func newRing(n int) *ring { return &ring{points: make([]Point, n)} }

func (r *ring) add(p Point) {
	r.points[r.next] = p
	r.next++
	if r.next == len(r.points) {
		r.next, r.full = 0, true
	}
}

// all returns the points, oldest first.
func (r *ring) all() []Point {
	if !r.full {
		return append([]Point(nil), r.points[:r.next]...)
	}
	out := make([]Point, 0, len(r.points))
	out = append(out, r.points[r.next:]...)
	return append(out, r.points[:r.next]...)
}

// history is every service's ring. A service that has been idle since the server started has
// none: a thousand services at zero cost nothing here.
type history struct {
	size  int
	rings map[string]*ring
}

func newHistory(window, interval time.Duration) *history {
	return &history{size: int(window / interval), rings: map[string]*ring{}}
}

// add records p for key and reports whether key has a ring now.
func (h *history) add(key string, p Point) bool {
	r := h.rings[key]
	if r == nil {
		if p.idle() {
			return false
		}
		r = newRing(h.size)
		h.rings[key] = r
	}
	r.add(p)
	return true
}

// keep drops the rings of keys that are not in live.
func (h *history) keep(live map[string]bool) {
	for k := range h.rings {
		if !live[k] {
			delete(h.rings, k)
		}
	}
}

func (h *history) snapshot() map[string][]Point {
	out := make(map[string][]Point, len(h.rings))
	for k, r := range h.rings {
		out[k] = r.all()
	}
	return out
}

// serviceKey names a service in the page: namespace/name.
func serviceKey(namespace, name string) string { return namespace + "/" + name }

// sampled are the metric families the dashboard reads.
var sampled = []string{kn.MetricRequestCount, kn.MetricRequestLatencies, kn.MetricStableConcurrency}

// gather takes a sample of g's metrics and splits it by service (namespace/name), so that a
// service's figures read only its own metrics: one pass over the sample per tick, however
// many services there are.
func gather(g prometheus.Gatherer, now time.Time) (map[string]*kn.MetricsSample, error) {
	families, err := g.Gather()
	if err != nil && len(families) == 0 {
		return nil, err
	}
	out := map[string]*kn.MetricsSample{}
	for _, f := range families {
		if !slices.Contains(sampled, f.GetName()) {
			continue
		}
		for _, m := range f.GetMetric() {
			var ns, svc string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "namespace_name":
					ns = l.GetValue()
				case "service_name":
					svc = l.GetValue()
				}
			}
			if svc == "" {
				continue
			}
			key := serviceKey(ns, svc)
			s := out[key]
			if s == nil {
				s = &kn.MetricsSample{At: now, Families: map[string]*dto.MetricFamily{}}
				out[key] = s
			}
			sf := s.Families[f.GetName()]
			if sf == nil {
				sf = &dto.MetricFamily{Name: f.Name, Type: f.Type}
				s.Families[f.GetName()] = sf
			}
			sf.Metric = append(sf.Metric, m)
		}
	}
	return out, nil
}

// everything selects every metric of a service's own sample.
func everything(*dto.Metric) bool { return true }

// servicePoint is a service's figures at now from its metrics in the previous and the
// current sample (either may be nil: no metrics yet) and its revisions' PodAutoscalers.
func servicePoint(now time.Time, pas []*pav1alpha1.PodAutoscaler, prev, cur *kn.MetricsSample) Point {
	nan := float32(math.NaN())
	p := Point{At: now.UnixMilli(), RPS: nan, P50: nan, P99: nan, Concurrency: nan, Desired: nan, Ready: nan}
	set := func(dst *float32, v *float64) {
		if v != nil {
			*dst = float32(*v)
		}
	}
	if cur != nil {
		set(&p.Concurrency, kn.GaugeSum(cur, kn.MetricStableConcurrency, everything))
		if prev == nil {
			// The service's first requests since the server started: they all came since the
			// previous tick.
			prev = &kn.MetricsSample{At: cur.At.Add(-defaultInterval), Families: map[string]*dto.MetricFamily{}}
		}
		set(&p.RPS, kn.Rate(prev, cur, kn.MetricRequestCount, everything))
		set(&p.P50, kn.LatencyQuantile(prev, cur, 0.50, everything))
		set(&p.P99, kn.LatencyQuantile(prev, cur, 0.99, everything))
	}
	var desired, ready int32
	known := false
	for _, pa := range pas {
		if pa.Status.DesiredScale != nil {
			desired += *pa.Status.DesiredScale
			known = true
		}
		if pa.Status.ActualScale != nil {
			ready += *pa.Status.ActualScale
			known = true
		}
	}
	if known {
		p.Desired, p.Ready = float32(desired), float32(ready)
	}
	return p
}
