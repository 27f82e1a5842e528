package activator

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

func TestRequestMetricsPerRevision(t *testing.T) {
	pod := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer pod.Close()
	rev := revision("hello-1", 0, corev1.ContainerPort{ContainerPort: 8080})
	rev.Labels = map[string]string{servingv1.ServiceLabelKey: "hello", servingv1.ConfigurationLabelKey: "hello"}
	c := fake.NewClientBuilder().WithScheme(scheme()).WithObjects(rev, slice("hello-1", pod.Listener.Addr().String())).Build()
	reg := prometheus.NewRegistry()
	a := New(Options{Client: c, Registerer: reg})
	if err := a.metrics.register(reg); err != nil {
		t.Fatal(err)
	}
	front := serve(t, a, "hello-1")
	for _, path := range []string{"/", "/", "/missing"} {
		resp, err := http.Get(front.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for code, want := range map[string]float64{"200": 2, "404": 1} {
		got := testutil.ToFloat64(a.metrics.count.WithLabelValues(ns, "hello", "hello", "hello-1", code, code[:1]+"xx"))
		if got != want {
			t.Errorf("revision_request_count{response_code=%q} = %v, want %v", code, got, want)
		}
	}
	if n := testutil.CollectAndCount(a.metrics.latency, "revision_request_latencies"); n != 2 {
		t.Errorf("%d latency series, want 2 (one per response code)", n)
	}
}

// TestNoRegistererObservesNothing: an activator without a Registerer (--metrics-address "")
// keeps no request metrics, and serves as well.
func TestNoRegistererObservesNothing(t *testing.T) {
	pod := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer pod.Close()
	c := fake.NewClientBuilder().WithScheme(scheme()).WithObjects(revision("hello-1", 0, corev1.ContainerPort{ContainerPort: 8080}), slice("hello-1", pod.Listener.Addr().String())).Build()
	a := New(Options{Client: c})
	if a.metrics != nil {
		t.Fatal("an activator without a Registerer has request metrics")
	}
	resp, err := http.Get(serve(t, a, "hello-1").URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d, want 200", resp.StatusCode)
	}
}

// BenchmarkObserve is what the request metrics add to a request: the count and the latency
// of its revision and code, with metrics (a registry) and without (nil).
func BenchmarkObserve(b *testing.B) {
	for _, bc := range []struct {
		name string
		m    *requestMetrics
	}{{"on", newRequestMetrics()}, {"off", nil}} {
		b.Run(bc.name, func(b *testing.B) {
			r := bc.m.revision(ns, "hello", "hello", "hello-00001")
			b.ReportAllocs()
			for b.Loop() {
				r.observe(http.StatusOK, 1234*time.Microsecond)
			}
		})
	}
}

// TestRevisionMetricsFollowTheStatus: a revision's series count each status apart, a request
// with the status of the one before takes no allocation, and a revision that is gone loses its
// series while the others keep theirs.
func TestRevisionMetricsFollowTheStatus(t *testing.T) {
	m := newRequestMetrics()
	one, two := m.revision(ns, "hello", "hello", "hello-1"), m.revision(ns, "hello", "hello", "hello-2")
	for _, code := range []int{200, 200, 404, 200, 503} {
		one.observe(code, time.Millisecond)
	}
	two.observe(200, time.Millisecond)
	for code, want := range map[string]float64{"200": 3, "404": 1, "503": 1} {
		if got := testutil.ToFloat64(m.count.WithLabelValues(ns, "hello", "hello", "hello-1", code, code[:1]+"xx")); got != want {
			t.Errorf("hello-1 revision_request_count{response_code=%q} = %v, want %v", code, got, want)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { one.observe(503, time.Millisecond) }); allocs != 0 {
		t.Errorf("observing the status of the request before allocates %v times, want 0", allocs)
	}

	m.forget(ns, "hello-1")
	if n := testutil.CollectAndCount(m.count); n != 1 {
		t.Errorf("%d count series after hello-1 was forgotten, want 1 (hello-2's)", n)
	}
	if n := testutil.CollectAndCount(m.latency); n != 1 {
		t.Errorf("%d latency series after hello-1 was forgotten, want 1 (hello-2's)", n)
	}
	if got := testutil.ToFloat64(m.count.WithLabelValues(ns, "hello", "hello", "hello-2", "200", "2xx")); got != 1 {
		t.Errorf("hello-2 revision_request_count = %v after hello-1 was forgotten, want 1", got)
	}
	var none *requestMetrics
	none.forget(ns, "hello-1")
	none.revision(ns, "hello", "hello", "hello-1").observe(200, time.Millisecond)
}
