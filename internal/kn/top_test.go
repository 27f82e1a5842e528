package kn

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

func fixturePodAutoscalers() []pav1alpha1.PodAutoscaler {
	pa := func(svc, name string, desired, actual int32) pav1alpha1.PodAutoscaler {
		p := pav1alpha1.PodAutoscaler{}
		p.Namespace, p.Name = "default", name
		p.Labels = map[string]string{servingv1.ServiceLabelKey: svc}
		p.Status.DesiredScale, p.Status.ActualScale = &desired, &actual
		return p
	}
	return []pav1alpha1.PodAutoscaler{pa("hello", "hello-00001", 0, 0), pa("hello", "hello-00002", 3, 2), pa("api", "api-00001", 1, 1)}
}

func parseMetrics(t *testing.T, at time.Time, text string) *MetricsSample {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return &MetricsSample{At: at, Families: fams}
}

const metricsHead = `# TYPE autoscaler_stable_request_concurrency gauge
autoscaler_stable_request_concurrency{configuration_name="hello",namespace_name="default",revision_name="hello-00002",service_name="hello"} 4.5
autoscaler_stable_request_concurrency{configuration_name="api",namespace_name="default",revision_name="api-00001",service_name="api"} 0
# TYPE revision_request_count counter
`

// fixtureMetrics are two scrapes 2 s apart: hello-00002 answered 20 requests between them,
// 10 under 5 ms, 8 more under 10 ms, 2 more under 100 ms.
func fixtureMetrics(t *testing.T) (prev, cur *MetricsSample) {
	prev = parseMetrics(t, testNow, metricsHead+`revision_request_count{namespace_name="default",revision_name="hello-00002",pod_name="a",response_code="200"} 100
# TYPE revision_request_latencies histogram
revision_request_latencies_bucket{namespace_name="default",revision_name="hello-00002",pod_name="a",le="5"} 50
revision_request_latencies_bucket{namespace_name="default",revision_name="hello-00002",pod_name="a",le="10"} 90
revision_request_latencies_bucket{namespace_name="default",revision_name="hello-00002",pod_name="a",le="100"} 100
revision_request_latencies_bucket{namespace_name="default",revision_name="hello-00002",pod_name="a",le="+Inf"} 100
revision_request_latencies_sum{namespace_name="default",revision_name="hello-00002",pod_name="a"} 500
revision_request_latencies_count{namespace_name="default",revision_name="hello-00002",pod_name="a"} 100
`)
	cur = parseMetrics(t, testNow.Add(2*time.Second), metricsHead+`revision_request_count{namespace_name="default",revision_name="hello-00002",pod_name="a",response_code="200"} 120
# TYPE revision_request_latencies histogram
revision_request_latencies_bucket{namespace_name="default",revision_name="hello-00002",pod_name="a",le="5"} 60
revision_request_latencies_bucket{namespace_name="default",revision_name="hello-00002",pod_name="a",le="10"} 108
revision_request_latencies_bucket{namespace_name="default",revision_name="hello-00002",pod_name="a",le="100"} 120
revision_request_latencies_bucket{namespace_name="default",revision_name="hello-00002",pod_name="a",le="+Inf"} 120
revision_request_latencies_sum{namespace_name="default",revision_name="hello-00002",pod_name="a"} 600
revision_request_latencies_count{namespace_name="default",revision_name="hello-00002",pod_name="a"} 120
`)
	return prev, cur
}

func TestTopRows(t *testing.T) {
	prev, cur := fixtureMetrics(t)
	rows := TopRows(fixturePodAutoscalers(), prev, cur)
	byRev := map[string]TopRow{}
	for _, r := range rows {
		byRev[r.Revision] = r
	}
	h := byRev["hello-00002"]
	if h.RPS == nil || *h.RPS != 10 {
		t.Errorf("hello-00002 rps = %v, want 10", h.RPS)
	}
	if h.Concurrency == nil || *h.Concurrency != 4.5 {
		t.Errorf("hello-00002 concurrency = %v, want 4.5", h.Concurrency)
	}
	// 20 requests: 10 ≤ 5 ms, 8 in (5, 10], 2 in (10, 100]. p50 is the 10th: 5 ms; p99 the
	// 19.8th: 10 + 90 × 1.8/2 = 91 ms.
	if h.P50 == nil || math.Abs(*h.P50-5) > 1e-9 {
		t.Errorf("hello-00002 p50 = %v, want 5", deref(h.P50))
	}
	if h.P99 == nil || math.Abs(*h.P99-91) > 1e-9 {
		t.Errorf("hello-00002 p99 = %v, want 91", deref(h.P99))
	}
	a := byRev["api-00001"]
	if a.RPS == nil || *a.RPS != 0 || a.P50 == nil || !math.IsNaN(*a.P50) {
		t.Errorf("api-00001 (no requests) rps %v p50 %v, want 0 and NaN", deref(a.RPS), deref(a.P50))
	}
	// Without the request metrics, rates and latencies are unknown, never zero.
	only := parseMetrics(t, testNow, metricsHead)
	for _, r := range TopRows(fixturePodAutoscalers(), only, only) {
		if r.RPS != nil || r.P50 != nil || r.P99 != nil {
			t.Errorf("%s without request metrics: rps %v p50 %v p99 %v, want nil", r.Revision, r.RPS, r.P50, r.P99)
		}
	}
	if got := []string{rows[0].Revision, rows[1].Revision, rows[2].Revision}; got[0] != "api-00001" || got[1] != "hello-00002" {
		t.Errorf("order %v, want by service, newest revision first", got)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
