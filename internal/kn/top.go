package kn

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"

	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// The metrics `gantry top` reads, under Knative's names: the autoscaler's gauge of in-flight
// requests, and the queue-proxy's request count and latency histogram (in milliseconds),
// when the server's endpoint carries them.
const (
	MetricStableConcurrency = "autoscaler_stable_request_concurrency"
	MetricRequestCount      = "revision_request_count"
	MetricRequestLatencies  = "revision_request_latencies"
	revisionLabel           = "revision_name"
	serviceLabel            = "service_name"
	namespaceLabel          = "namespace_name"
)

// MetricsSample is one scrape of a Prometheus endpoint and when it was taken.
type MetricsSample struct {
	At       time.Time
	Families map[string]*dto.MetricFamily
}

// TopRow is one revision in `gantry top`. A nil figure is one the sources do not have.
type TopRow struct {
	Namespace, Service, Revision string
	Desired, Ready               *int32
	RPS, Concurrency, P50, P99   *float64
}

// TopRows builds a row per PodAutoscaler (one per revision) from its status and, when
// given, the metrics between two samples (prev may be nil: rates then need a second sample).
func TopRows(pas []pav1alpha1.PodAutoscaler, prev, cur *MetricsSample) []TopRow {
	rows := make([]TopRow, 0, len(pas))
	for i := range pas {
		pa := &pas[i]
		r := TopRow{
			Namespace: pa.Namespace, Service: pa.Labels[servingv1.ServiceLabelKey], Revision: pa.Name,
			Desired: pa.Status.DesiredScale, Ready: pa.Status.ActualScale,
		}
		if cur != nil {
			of := RevisionMetrics(pa.Namespace, pa.Name)
			r.Concurrency = GaugeSum(cur, MetricStableConcurrency, of)
			if prev != nil {
				r.RPS = Rate(prev, cur, MetricRequestCount, of)
				r.P50 = LatencyQuantile(prev, cur, 0.50, of)
				r.P99 = LatencyQuantile(prev, cur, 0.99, of)
			}
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Namespace != rows[j].Namespace {
			return rows[i].Namespace < rows[j].Namespace
		}
		if rows[i].Service != rows[j].Service {
			return rows[i].Service < rows[j].Service
		}
		return rows[i].Revision > rows[j].Revision
	})
	return rows
}

// Top prints the rows as a table; "n/a" marks a figure no source has.
func (p Printer) Top(w io.Writer, rows []TopRow) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, "No revisions found.")
		return err
	}
	t := newTable(w, 3)
	t.row("NAMESPACE", "SERVICE", "REVISION", "DESIRED", "READY", "REQ/S", "CONCURRENCY", "P50", "P99")
	for _, r := range rows {
		t.row(r.Namespace, r.Service, r.Revision, intText(r.Desired), intText(r.Ready), floatText(r.RPS, 1, ""),
			floatText(r.Concurrency, 2, ""), floatText(r.P50, 1, " ms"), floatText(r.P99, 1, " ms"))
	}
	return t.flush()
}

func intText(v *int32) string {
	if v == nil {
		return "n/a"
	}
	return strconv.Itoa(int(*v))
}

func floatText(v *float64, prec int, unit string) string {
	switch {
	case v == nil:
		return "n/a"
	case math.IsNaN(*v):
		return "-" // the metric exists, but no request came in the interval
	}
	return strconv.FormatFloat(*v, 'f', prec, 64) + unit
}

// MetricSelector picks the metrics of a family that a figure sums.
type MetricSelector func(m *dto.Metric) bool

// RevisionMetrics selects the metrics that carry the revision's labels.
func RevisionMetrics(namespace, revision string) MetricSelector {
	return labelled(namespace, revisionLabel, revision)
}

// ServiceMetrics selects the metrics of every revision of a Knative Service.
func ServiceMetrics(namespace, service string) MetricSelector {
	return labelled(namespace, serviceLabel, service)
}

// labelled selects metrics whose label key is value, in namespace (or without one).
func labelled(namespace, key, value string) MetricSelector {
	return func(m *dto.Metric) bool {
		v, ns := "", ""
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case key:
				v = l.GetValue()
			case namespaceLabel:
				ns = l.GetValue()
			}
		}
		return v == value && (ns == "" || ns == namespace)
	}
}

// GaugeSum is the sum of a gauge family's selected values; nil without the family or a
// selected metric in it.
func GaugeSum(s *MetricsSample, family string, of MetricSelector) *float64 {
	f := s.Families[family]
	if f == nil {
		return nil
	}
	var sum float64
	found := false
	for _, m := range f.GetMetric() {
		if of(m) {
			sum += m.GetGauge().GetValue()
			found = true
		}
	}
	if !found {
		return nil
	}
	return &sum
}

// Rate is how fast a counter family's selected metrics grew between the samples, per
// second; nil when the family is not served or the samples are not apart in time.
func Rate(prev, cur *MetricsSample, family string, of MetricSelector) *float64 {
	dt := cur.At.Sub(prev.At).Seconds()
	if dt <= 0 {
		return nil
	}
	n := CounterDelta(prev, cur, family, of)
	if n == nil {
		return nil
	}
	return ptr(*n / dt)
}

// CounterDelta is how much a counter family's selected metrics grew between the samples;
// nil when the family is not served at all. A metric missing from a sample counts as 0.
func CounterDelta(prev, cur *MetricsSample, family string, of MetricSelector) *float64 {
	if cur.Families[family] == nil {
		return nil
	}
	sum := func(s *MetricsSample) float64 {
		var v float64
		for _, m := range s.Families[family].GetMetric() {
			if of(m) {
				v += m.GetCounter().GetValue()
			}
		}
		return v
	}
	d := sum(cur) - sum(prev)
	if d < 0 { // a restart reset the counter
		d = sum(cur)
	}
	return &d
}

// LatencyQuantile estimates quantile q of the selected latency histograms' observations
// between the samples by linear interpolation inside the bucket, as Prometheus's
// histogram_quantile does. It is nil without the family and NaN when nothing was observed.
func LatencyQuantile(prev, cur *MetricsSample, q float64, of MetricSelector) *float64 {
	if cur.Families[MetricRequestLatencies] == nil {
		return nil
	}
	buckets := func(s *MetricsSample) map[float64]float64 {
		out := map[float64]float64{}
		for _, m := range s.Families[MetricRequestLatencies].GetMetric() {
			if !of(m) {
				continue
			}
			inf := false
			for _, b := range m.GetHistogram().GetBucket() {
				out[b.GetUpperBound()] += float64(b.GetCumulativeCount())
				inf = inf || math.IsInf(b.GetUpperBound(), 1)
			}
			if !inf {
				out[math.Inf(1)] += float64(m.GetHistogram().GetSampleCount())
			}
		}
		return out
	}
	before, after := buckets(prev), buckets(cur)
	bounds := make([]float64, 0, len(after))
	for b := range after {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	counts := make([]float64, len(bounds))
	for i, b := range bounds {
		counts[i] = math.Max(after[b]-before[b], 0)
	}
	nan := math.NaN()
	if len(counts) == 0 || counts[len(counts)-1] == 0 {
		return &nan
	}
	rank := q * counts[len(counts)-1]
	lower, below := 0.0, 0.0
	for i, b := range bounds {
		if counts[i] >= rank {
			if math.IsInf(b, 1) {
				v := lower // beyond the last bound: the last bound is the best estimate
				return &v
			}
			in := counts[i] - below
			v := b
			if in > 0 {
				v = lower + (b-lower)*(rank-below)/in
			}
			return &v
		}
		lower, below = b, counts[i]
	}
	return &nan
}
