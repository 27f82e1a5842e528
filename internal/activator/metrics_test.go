package activator

import (
	"net/http"
	"net/http/httptest"
	"testing"

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
	a := New(Options{Client: c})
	reg := prometheus.NewRegistry()
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
