package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/gantry-run/gantry/internal/metering"
	"github.com/gantry-run/gantry/pkg/apis"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	sv1alpha1 "github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

func TestPointJSON(t *testing.T) {
	nan := float32(math.NaN())
	b, err := json.Marshal(Point{At: 1000, RPS: 2.5, P50: nan, P99: 12, Concurrency: 0, Desired: 1, Ready: nan})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "[1000,2.5,null,12,0,1,null]"; got != want {
		t.Errorf("point as JSON: %s, want %s", got, want)
	}
}

func TestHistoryKeepsTheWindowAndSkipsIdleServices(t *testing.T) {
	h := newHistory(10*time.Second, 2*time.Second) // 5 points
	nan := float32(math.NaN())
	idle := Point{RPS: 0, P50: nan, P99: nan, Concurrency: nan, Desired: 0, Ready: 0}
	if h.add("ns/idle", idle) {
		t.Error("an idle service got a ring")
	}
	for i := range 7 {
		p := idle
		p.At, p.RPS = int64(i), float32(i+1)
		if !h.add("ns/busy", p) {
			t.Fatalf("point %d: the busy service has no ring", i)
		}
	}
	// Once it has a ring, idle points are kept too: the graph falls back to zero.
	idle.At = 7
	h.add("ns/busy", idle)
	var ats []int64
	for _, p := range h.snapshot()["ns/busy"] {
		ats = append(ats, p.At)
	}
	if want := []int64{3, 4, 5, 6, 7}; !equal(ats, want) {
		t.Errorf("kept points at %v, want %v (oldest first, five of them)", ats, want)
	}
	h.keep(map[string]bool{})
	if len(h.snapshot()) != 0 {
		t.Error("a deleted service's ring was kept")
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// requestMetrics registers the metrics the dashboard reads, under the names and labels of
// the activator's and the autoscaler's.
func requestMetrics(t *testing.T) (*prometheus.Registry, *prometheus.CounterVec, *prometheus.HistogramVec, *prometheus.GaugeVec) {
	t.Helper()
	labels := []string{"namespace_name", "service_name", "configuration_name", "revision_name", "response_code", "response_code_class"}
	count := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "revision_request_count", Help: "h"}, labels)
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "revision_request_latencies", Help: "h", Buckets: []float64{5, 10, 20, 40, 100}}, labels)
	conc := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "autoscaler_stable_request_concurrency", Help: "h"}, labels[:4])
	reg := prometheus.NewRegistry()
	reg.MustRegister(count, latency, conc)
	return reg, count, latency, conc
}

func TestServicePointFromMetricsAndPodAutoscalers(t *testing.T) {
	reg, count, latency, conc := requestMetrics(t)
	t0 := time.Unix(1000, 0)
	count.WithLabelValues("ns", "web", "web", "web-00001", "200", "2xx").Add(10)
	count.WithLabelValues("ns", "other", "other", "other-00001", "200", "2xx").Add(1000)
	prev, err := gather(reg, t0)
	if err != nil {
		t.Fatal(err)
	}
	// Two seconds later: 20 more requests over two revisions, all of them fast.
	count.WithLabelValues("ns", "web", "web", "web-00001", "200", "2xx").Add(12)
	count.WithLabelValues("ns", "web", "web", "web-00002", "500", "5xx").Add(8)
	for range 20 {
		latency.WithLabelValues("ns", "web", "web", "web-00002", "200", "2xx").Observe(7)
	}
	conc.WithLabelValues("ns", "web", "web", "web-00001").Set(1.5)
	conc.WithLabelValues("ns", "web", "web", "web-00002").Set(0.5)
	cur, err := gather(reg, t0.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	pas := []*pav1alpha1.PodAutoscaler{
		{Status: pav1alpha1.PodAutoscalerStatus{DesiredScale: ptr.To[int32](2), ActualScale: ptr.To[int32](1)}},
		{Status: pav1alpha1.PodAutoscalerStatus{DesiredScale: ptr.To[int32](1), ActualScale: ptr.To[int32](1)}},
	}
	key := serviceKey("ns", "web")
	p := servicePoint(t0.Add(2*time.Second), pas, prev[key], cur[key])
	if p.RPS != 10 {
		t.Errorf("rps %v, want 10 (20 requests in 2 s, the other service's not counted)", p.RPS)
	}
	if p.P50 < 5 || p.P50 > 10 || p.P99 < 5 || p.P99 > 10 {
		t.Errorf("p50 %v, p99 %v: want both in the 5–10 ms bucket", p.P50, p.P99)
	}
	if p.Concurrency != 2 || p.Desired != 3 || p.Ready != 2 {
		t.Errorf("concurrency %v desired %v ready %v, want 2, 3, 2 (summed over revisions)", p.Concurrency, p.Desired, p.Ready)
	}

	// A service with no metrics and no autoscaler yet has no figures, not zeros.
	empty := servicePoint(t0, nil, nil, nil)
	if !math.IsNaN(float64(empty.RPS)) || !math.IsNaN(float64(empty.Desired)) {
		t.Errorf("a service without sources: %+v, want NaN figures", empty)
	}
}

func scheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, servingv1.AddToScheme, pav1alpha1.AddToScheme, sv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// webService is a Ready service with two revisions, all traffic on the first.
func webService() []client.Object {
	svc := &servingv1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"}}
	svc.Status.URL = &apis.URL{Scheme: "http", Host: "web.ns.localhost"}
	svc.Status.LatestReadyRevisionName = "web-00002"
	svc.Status.Conditions = apis.Conditions{{Type: apis.ConditionReady, Status: corev1.ConditionTrue}}
	svc.Spec.Traffic = []servingv1.TrafficTarget{{RevisionName: "web-00001", Percent: ptr.To[int64](100)}, {RevisionName: "web-00002", Tag: "next"}}
	svc.Status.Traffic = svc.Spec.Traffic
	out := []client.Object{svc}
	for _, name := range []string{"web-00001", "web-00002"} {
		out = append(out, &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{servingv1.ServiceLabelKey: "web"}}},
			&pav1alpha1.PodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{servingv1.ServiceLabelKey: "web"}},
				Status: pav1alpha1.PodAutoscalerStatus{DesiredScale: ptr.To[int32](1), ActualScale: ptr.To[int32](1)}})
	}
	out = append(out,
		&sv1alpha1.ServerlessProfile{ObjectMeta: metav1.ObjectMeta{Name: "apps"}, Status: sv1alpha1.ServerlessProfileStatus{Phase: sv1alpha1.PhaseActive, Selectors: "ns"}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "serverless-ip-10-42-128-5",
			Labels:      map[string]string{sv1alpha1.ComputeTypeTaintKey: sv1alpha1.ComputeTypeTaintValue, sv1alpha1.ProfileLabel: "apps"},
			Annotations: map[string]string{sv1alpha1.NodePodAnnotation: "ns/web-00001-deployment-abc", sv1alpha1.CapacityProvisionedAnnotation: "0.25vCPU 0.5GB"}}})
	return out
}

func newTestDashboard(t *testing.T, opts Options) (*Dashboard, client.Client) {
	t.Helper()
	c := fake.NewClientBuilder().WithScheme(scheme(t)).WithObjects(webService()...).Build()
	d := New(opts)
	d.cache = c
	return d, c
}

// TestStreamSendsHistoryThenTicks: a page that opens the stream gets every point kept, then
// each tick's new point; services and profiles come when they change.
func TestStreamSendsHistoryThenTicks(t *testing.T) {
	reg, count, _, _ := requestMetrics(t)
	d, _ := newTestDashboard(t, Options{Gatherer: reg})
	ctx := t.Context()
	t0 := time.Unix(2000, 0)
	prev, err := d.tick(ctx, t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.lastServices != nil || d.lastProfiles != nil {
		t.Error("with no page open, a tick encoded the services and profiles")
	}
	count.WithLabelValues("ns", "web", "web", "web-00001", "200", "2xx").Add(4)
	if _, err := d.tick(ctx, t0.Add(2*time.Second), prev); err != nil {
		t.Fatal(err)
	}

	srv := httptest.NewServer(d)
	defer srv.Close()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/stream", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := bufio.NewReader(resp.Body)
	first := readFrame(t, events)
	pts := first.Points["ns/web"]
	if len(pts) != 2 || pts[1][1] != 2 {
		t.Errorf("first frame's points of ns/web: %v, want two, the second at 2 req/s", pts)
	}
	if first.Window != defaultWindow.Milliseconds() {
		t.Errorf("first frame's window %d", first.Window)
	}
	var services []ServiceView
	if err := json.Unmarshal(first.Services, &services); err != nil || len(services) != 1 || services[0].URL != "http://web.ns.localhost" || services[0].Ready != "True" || len(services[0].Revisions) != 2 {
		t.Errorf("first frame's services: %s (%v)", first.Services, err)
	}
	var profiles []ProfileView
	if err := json.Unmarshal(first.Profiles, &profiles); err != nil || len(profiles) != 1 || len(profiles[0].Nodes) != 1 || profiles[0].Nodes[0].Pod != "ns/web-00001-deployment-abc" {
		t.Errorf("first frame's profiles: %s (%v)", first.Profiles, err)
	}

	// The page is subscribed once the first frame is written.
	if _, err := d.tick(ctx, t0.Add(4*time.Second), prev); err != nil {
		t.Fatal(err)
	}
	next := readFrame(t, events)
	if len(next.Points["ns/web"]) != 1 || next.Services != nil || next.Profiles != nil {
		t.Errorf("a later frame: %d points, services %s, profiles %s; want one point and nothing unchanged", len(next.Points["ns/web"]), next.Services, next.Profiles)
	}
}

func readFrame(t *testing.T, r *bufio.Reader) (f struct {
	Window   int64
	Points   map[string][][]float64
	Services json.RawMessage
	Profiles json.RawMessage
}) {
	t.Helper()
	var name, data string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			break
		}
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			name = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			data = v
		}
	}
	if name != "tick" {
		t.Fatalf("event %q, want tick", name)
	}
	if err := json.Unmarshal([]byte(data), &f); err != nil {
		t.Fatalf("frame %s: %v", data, err)
	}
	return f
}

func TestAuthorize(t *testing.T) {
	const token = "0123456789abcdef0123"
	cases := []struct {
		name, token, remote, host, auth, query, cookie string
		want                                           int
	}{
		{"loopback on the dashboard's host", "", "127.0.0.1:5000", "gantry.localhost:8080", "", "", "", http.StatusOK},
		{"loopback on localhost", "", "[::1]:5000", "localhost:8080", "", "", "", http.StatusOK},
		{"loopback with another host (a rebound DNS name)", "", "127.0.0.1:5000", "evil.example:8080", "", "", "", http.StatusForbidden},
		{"the network without a token configured", "", "192.168.1.20:5000", "192.168.1.10:8080", "", "", "", http.StatusForbidden},
		{"the network without the token", token, "192.168.1.20:5000", "192.168.1.10:8080", "", "", "", http.StatusUnauthorized},
		{"the network with a wrong token", token, "192.168.1.20:5000", "192.168.1.10:8080", "Bearer nope", "", "", http.StatusUnauthorized},
		{"the network with the bearer token", token, "192.168.1.20:5000", "192.168.1.10:8080", "Bearer " + token, "", "", http.StatusOK},
		{"the network with ?token=", token, "192.168.1.20:5000", "192.168.1.10:8080", "", token, "", http.StatusOK},
		{"the network with the cookie", token, "192.168.1.20:5000", "192.168.1.10:8080", "", "", token, http.StatusOK},
		{"loopback with a token configured", token, "127.0.0.1:5000", "gantry.localhost", "", "", "", http.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := New(Options{Token: c.token})
			target := "/"
			if c.query != "" {
				target += "?token=" + c.query
			}
			r := httptest.NewRequest(http.MethodGet, target, nil)
			r.RemoteAddr, r.Host = c.remote, c.host
			if c.auth != "" {
				r.Header.Set("Authorization", c.auth)
			}
			if c.cookie != "" {
				r.AddCookie(&http.Cookie{Name: tokenCookie, Value: c.cookie})
			}
			w := httptest.NewRecorder()
			d.ServeHTTP(w, r)
			if w.Code != c.want {
				t.Fatalf("status %d, want %d: %s", w.Code, c.want, w.Body)
			}
			if c.want == http.StatusOK && !strings.Contains(w.Body.String(), "<title>Gantry</title>") {
				t.Errorf("the page was not served: %.200s", w.Body)
			}
			if c.query != "" && !strings.Contains(w.Header().Get("Set-Cookie"), tokenCookie+"=") {
				t.Error("?token= set no cookie")
			}
		})
	}
}

func TestStaticFilesAndUnknownPaths(t *testing.T) {
	d := New(Options{})
	for path, want := range map[string]int{"/": 200, "/static/app.js": 200, "/static/app.css": 200, "/static/nope.js": 404, "/admin": 404} {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.RemoteAddr, r.Host = "127.0.0.1:1", "localhost"
		w := httptest.NewRecorder()
		d.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("GET %s: %d, want %d", path, w.Code, want)
		}
	}
}

func putTraffic(t *testing.T, d *Dashboard, body, origin, contentType string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPut, "/api/services/ns/web/traffic", strings.NewReader(body))
	r.RemoteAddr, r.Host = "127.0.0.1:1", "gantry.localhost:8080"
	r.Header.Set("Content-Type", contentType)
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	w := httptest.NewRecorder()
	d.ServeHTTP(w, r)
	return w
}

// TestTrafficWritesTheService: a split from the page becomes the Service's traffic (kept
// tags included); a bad one is refused naming the field, and nothing is written.
func TestTrafficWritesTheService(t *testing.T) {
	d, c := newTestDashboard(t, Options{})
	get := func() []servingv1.TrafficTarget {
		svc := &servingv1.Service{}
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: "ns", Name: "web"}, svc); err != nil {
			t.Fatal(err)
		}
		return svc.Spec.Traffic
	}
	for _, bad := range []struct{ body, origin, ct, want string }{
		{`{"traffic":[{"revisionName":"web-00009","percent":100}]}`, "", "application/json", `traffic[0].revisionName: "web-00009" is not a revision`},
		{`{"traffic":[{"revisionName":"web-00001","percent":40},{"revisionName":"web-00002","percent":40}]}`, "", "application/json", "sum to 80"},
		{`{"traffic":[{"revisionName":"web-00001","percent":120}]}`, "", "application/json", "traffic[0].percent: 120"},
		{`{"split":1}`, "", "application/json", "unknown field"},
		{`{"traffic":[{"revisionName":"web-00002","percent":100}]}`, "http://evil.example", "application/json", "origin"},
		{`{"traffic":[{"revisionName":"web-00002","percent":100}]}`, "", "text/plain", "application/json"},
	} {
		w := putTraffic(t, d, bad.body, bad.origin, bad.ct)
		if w.Code < 400 || !strings.Contains(w.Body.String(), bad.want) {
			t.Errorf("PUT %s (origin %q, %s): %d %s; want an error with %q", bad.body, bad.origin, bad.ct, w.Code, w.Body, bad.want)
		}
	}
	if got := get(); len(got) != 2 || *got[0].Percent != 100 {
		t.Fatalf("refused splits changed the traffic: %+v", got)
	}

	w := putTraffic(t, d, `{"traffic":[{"revisionName":"web-00002","percent":100}]}`, "http://gantry.localhost:8080", "application/json")
	if w.Code != http.StatusOK {
		t.Fatalf("PUT: %d %s", w.Code, w.Body)
	}
	got := get()
	percent := map[string]int64{}
	tags := map[string]string{}
	for _, tt := range got {
		percent[tt.RevisionName] = ptr.Deref(tt.Percent, 0)
		tags[tt.RevisionName] = tt.Tag
	}
	if percent["web-00002"] != 100 || percent["web-00001"] != 0 || tags["web-00002"] != "next" {
		t.Errorf("traffic after the PUT: %+v; want web-00002 at 100%% keeping its tag", got)
	}
}

func TestUsageOfAService(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	size := metering.Size{MilliCPU: 1000, MemoryMiB: 2048, StorageMiB: 20 << 10}
	records := []metering.Record{
		{UID: "a", Namespace: "ns", OwnerKind: "Service", OwnerName: "web", Size: size, Start: now.Add(-2 * time.Hour), End: now.Add(-time.Hour)},
		{UID: "b", Namespace: "ns", OwnerKind: "Service", OwnerName: "web", Size: size, Start: now.Add(-30 * time.Minute)},
		{UID: "c", Namespace: "ns", OwnerKind: "Service", OwnerName: "other", Size: size, Start: now.Add(-time.Hour)},
	}
	rates := metering.Rates{VCPUHour: 1, GBHour: 0.5}
	u := usageOf(records, rates, "ns", "web", now)
	if u == nil {
		t.Fatal("no usage for ns/web")
	}
	if u.Pods != 2 || u.Running != 1 || u.VCPUSeconds != 5400 {
		t.Errorf("usage %+v, want 2 pods, 1 running, 5400 vCPU-seconds", u)
	}
	if want := 1.5*1 + 1.5*2*0.5; math.Abs(u.Cost-want) > 1e-9 {
		t.Errorf("cost %v, want %v", u.Cost, want)
	}
	if usageOf(records, rates, "ns", "none", now) != nil {
		t.Error("a service without records has usage")
	}
}

func TestStreamIsBounded(t *testing.T) {
	d, _ := newTestDashboard(t, Options{})
	for range maxViewers {
		d.viewers[make(chan []byte, 1)] = struct{}{}
	}
	r := httptest.NewRequest(http.MethodGet, "/api/stream", nil)
	r.RemoteAddr, r.Host = "127.0.0.1:1", "localhost"
	w := httptest.NewRecorder()
	d.ServeHTTP(w, r)
	if w.Code != http.StatusServiceUnavailable {
		t.Errorf("page %d: status %d, want 503", maxViewers+1, w.Code)
	}
	if _, err := d.tick(t.Context(), time.Now(), nil); !errors.Is(err, errNoGatherer) {
		t.Errorf("tick without a registry: %v", err)
	}
}

// TestServiceDetail: a service's page has its URL linked with the gateway's port, its
// revisions newest first with their share of traffic and tags, and no usage without records.
func TestServiceDetail(t *testing.T) {
	d, _ := newTestDashboard(t, Options{GatewayPort: 8080})
	r := httptest.NewRequest(http.MethodGet, "/api/services/ns/web", nil)
	r.RemoteAddr, r.Host = "127.0.0.1:1", "localhost"
	w := httptest.NewRecorder()
	d.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("GET: %d %s", w.Code, w.Body)
	}
	var got Detail
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.URL != "http://web.ns.localhost" || got.Link != "http://web.ns.localhost:8080" || got.Ready != "True" {
		t.Errorf("url %q link %q ready %q", got.URL, got.Link, got.Ready)
	}
	if len(got.RevisionList) != 2 || got.RevisionList[0].Name != "web-00002" || got.RevisionList[0].Tags != "next" || got.RevisionList[1].Percent != 100 {
		t.Errorf("revisions %+v; want web-00002 (tag next) first, web-00001 at 100%%", got.RevisionList)
	}
	if got.Usage != nil {
		t.Errorf("usage %+v without a usage database", got.Usage)
	}
	r = httptest.NewRequest(http.MethodGet, "/api/services/ns/none", nil)
	r.RemoteAddr, r.Host = "127.0.0.1:1", "localhost"
	w = httptest.NewRecorder()
	d.ServeHTTP(w, r)
	if w.Code != http.StatusNotFound {
		t.Errorf("an unknown service: %d, want 404", w.Code)
	}
}
