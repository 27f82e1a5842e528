package resourcemetrics

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

func testHandler(t *testing.T) http.Handler {
	t.Helper()
	h := newHistory(15 * time.Second)
	round(h, 0, 0, 1<<20)
	round(h, 5*time.Second, time.Second, 1<<20)
	return &handler{src: h, node: "gantry"}
}

func get(t *testing.T, h http.Handler, path string, into any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Accept", "application/json")
	h.ServeHTTP(rec, req)
	if into != nil && rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), into); err != nil {
			t.Fatalf("GET %s: %v\n%s", path, err, rec.Body)
		}
	}
	return rec.Code
}

func TestHandlerServesTheMetricsPaths(t *testing.T) {
	h := testHandler(t)
	var resources metav1.APIResourceList
	if code := get(t, h, "/apis/metrics.k8s.io/v1beta1", &resources); code != 200 || len(resources.APIResources) != 2 {
		t.Errorf("discovery: %d %+v", code, resources)
	}
	for _, tt := range []struct {
		path string
		want int
	}{
		{"/apis/metrics.k8s.io/v1beta1/pods", 1},
		{"/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods", 1},
		{"/apis/metrics.k8s.io/v1beta1/namespaces/other/pods", 0},
		{"/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods?labelSelector=app%3Dx", 1},
		{"/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods?labelSelector=app%3Dy", 0},
		{"/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=metadata.name%3Dp", 1},
		{"/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=metadata.namespace%3Dother", 0},
	} {
		var list metricsv1beta1.PodMetricsList
		if code := get(t, h, tt.path, &list); code != 200 || len(list.Items) != tt.want || list.Kind != "PodMetricsList" {
			t.Errorf("GET %s: %d, %d items (kind %q), want 200 and %d", tt.path, code, len(list.Items), list.Kind, tt.want)
		}
	}
	var pod metricsv1beta1.PodMetrics
	if code := get(t, h, "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods/p", &pod); code != 200 || pod.Name != "p" || pod.Containers[0].Usage.Cpu().MilliValue() != 200 {
		t.Errorf("get pod: %d %+v", code, pod)
	}
	var node metricsv1beta1.NodeMetrics
	if code := get(t, h, "/apis/metrics.k8s.io/v1beta1/nodes/gantry", &node); code != 200 || node.Name != "gantry" {
		t.Errorf("get node: %d %+v", code, node)
	}
	var nodes metricsv1beta1.NodeMetricsList
	if code := get(t, h, "/apis/metrics.k8s.io/v1beta1/nodes", &nodes); code != 200 || len(nodes.Items) != 1 {
		t.Errorf("list nodes: %d %+v", code, nodes)
	}
	for _, path := range []string{
		"/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods/q",
		"/apis/metrics.k8s.io/v1beta1/nodes/other",
		"/apis/metrics.k8s.io/v1beta1/services",
	} {
		if code := get(t, h, path, nil); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
	if code := get(t, h, "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=%3D%3D%3D", nil); code != http.StatusBadRequest {
		t.Errorf("bad selector: %d, want 400", code)
	}
}

func TestOnlyTheAggregatorIsServed(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	h := fromAggregator([]string{"front-proxy-client"}, ok)
	verified := func(cn string) *tls.ConnectionState {
		return &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: cn}}}}}
	}
	for _, tt := range []struct {
		name string
		tls  *tls.ConnectionState
		want int
	}{
		{"plain HTTP", nil, http.StatusUnauthorized},
		{"no client certificate", &tls.ConnectionState{}, http.StatusUnauthorized},
		{"a front-proxy certificate of another name", verified("someone"), http.StatusUnauthorized},
		{"the aggregator", verified("front-proxy-client"), http.StatusOK},
	} {
		req := httptest.NewRequest(http.MethodGet, "/apis/metrics.k8s.io/v1beta1", nil)
		req.TLS = tt.tls
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, rec.Code, tt.want)
		}
	}
}
