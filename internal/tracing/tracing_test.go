package tracing

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gantry-run/gantry/internal/tracing/tracingtest"
)

func TestOffIsNoOp(t *testing.T) {
	var tr *Tracer
	r := httptest.NewRequest(http.MethodGet, "http://x/", nil)
	r.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	r2, span := tr.StartServer(r, "gateway")
	if r2 != r || span.Recording() {
		t.Fatal("a nil tracer changed the request or recorded")
	}
	tr.Inject(r.Context(), r.Header)
	if got := r.Header.Get("Traceparent"); got != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" {
		t.Fatalf("a nil tracer rewrote the client's traceparent: %q", got)
	}
	span.End(200)
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		_, s := tr.StartServer(r, "gateway")
		tr.Inject(r.Context(), r.Header)
		s.End(200)
	}); allocs != 0 {
		t.Fatalf("tracing off allocates %v times a request", allocs)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, o := range []Options{
		{Endpoint: "127.0.0.1:4318"},
		{Endpoint: "grpc://127.0.0.1:4317"},
		{Endpoint: "http://127.0.0.1:4318/v1/traces"},
		{Endpoint: "http://127.0.0.1:4318", SamplingRatio: 1.5},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

// TestHopsJoinTheCallersTrace sends a request with a client's traceparent through two hops,
// each starting its span from what it received and injecting its own into what it sends,
// and checks the spans reach the collector as one chain under the client's span.
func TestHopsJoinTheCallersTrace(t *testing.T) {
	rcv := tracingtest.Start()
	defer rcv.Close()
	tr, err := New(Options{Endpoint: rcv.URL(), Service: "test", SamplingRatio: 0})
	if err != nil {
		t.Fatal(err)
	}
	const clientTrace, clientSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	var seenByApp string
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenByApp = r.Header.Get("Traceparent")
	}))
	defer app.Close()
	hop := func(name string, next string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r, span := tr.StartServer(r, name)
			defer span.End(http.StatusOK)
			ctx, wait := tr.StartSpan(r.Context(), name+".wait")
			wait.EndErr(nil)
			_ = ctx
			out, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, next, nil)
			out.Header = r.Header.Clone()
			tr.Inject(r.Context(), out.Header)
			resp, err := http.DefaultClient.Do(out)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		})
	}
	second := httptest.NewServer(hop("queue-proxy", app.URL))
	defer second.Close()
	first := httptest.NewServer(hop("gateway", second.URL))
	defer first.Close()

	req, _ := http.NewRequest(http.MethodGet, first.URL, nil)
	// Sampled by the client: the ratio of 0 applies only to new traces.
	req.Header.Set("Traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := map[string]tracingtest.Span{}
	deadline := time.Now().Add(5 * time.Second)
	for len(spans) < 4 && time.Now().Before(deadline) {
		for _, s := range rcv.Spans() {
			spans[s.Name] = s
		}
		time.Sleep(20 * time.Millisecond)
	}
	gw, qp := spans["gateway"], spans["queue-proxy"]
	if gw.TraceID != clientTrace || qp.TraceID != clientTrace {
		t.Fatalf("spans not in the client's trace: %+v", spans)
	}
	if gw.ParentID != clientSpan || qp.ParentID != gw.SpanID || spans["gateway.wait"].ParentID != gw.SpanID {
		t.Fatalf("spans not chained client → gateway → queue-proxy: %+v", spans)
	}
	if gw.Service != "test" || gw.Attrs["http.response.status_code"] != "200" {
		t.Fatalf("gateway span: %+v", gw)
	}
	if !strings.Contains(seenByApp, qp.SpanID) {
		t.Fatalf("the app got traceparent %q, want the queue-proxy's span %s", seenByApp, qp.SpanID)
	}
}

func TestNewTraceSampledByRatio(t *testing.T) {
	rcv := tracingtest.Start()
	defer rcv.Close()
	tr, err := New(Options{Endpoint: rcv.URL(), Service: "test", SamplingRatio: 0})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "http://x/", nil)
	_, span := tr.StartServer(r, "gateway")
	if span.Recording() {
		t.Fatal("a new trace was recorded at sampling ratio 0")
	}
	span.End(200)
	tr2, _ := New(Options{Endpoint: rcv.URL(), Service: "test", SamplingRatio: 1})
	_, span = tr2.StartServer(r, "gateway")
	if !span.Recording() {
		t.Fatal("a new trace was not recorded at sampling ratio 1")
	}
	span.End(200)
	_ = tr.Shutdown(context.Background())
	_ = tr2.Shutdown(context.Background())
}

func TestRelayForwardsAndBounds(t *testing.T) {
	rcv := tracingtest.Start()
	defer rcv.Close()
	u, _ := ParseEndpoint(rcv.URL())
	relay := httptest.NewServer(Relay(u))
	defer relay.Close()
	// A queue-proxy's exporter pointed at the relay reaches the collector.
	tr, err := New(Options{Endpoint: relay.URL, Service: "queue-proxy", SamplingRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.StartServer(httptest.NewRequest(http.MethodGet, "http://x/", nil), "queue-proxy")
	span.End(200)
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rcv.Spans(); len(got) != 1 || got[0].Name != "queue-proxy" {
		t.Fatalf("collector got %+v through the relay", got)
	}
	for _, tc := range []struct {
		method, path string
		body         string
		want         int
	}{
		{http.MethodGet, "/v1/traces", "", http.StatusNotFound},
		{http.MethodPost, "/other", "", http.StatusNotFound},
		{http.MethodPost, "/v1/traces", strings.Repeat("x", relayMaxBody+1), http.StatusRequestEntityTooLarge},
	} {
		req, _ := http.NewRequest(tc.method, relay.URL+tc.path, strings.NewReader(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s (%d bytes): %d, want %d", tc.method, tc.path, len(tc.body), resp.StatusCode, tc.want)
		}
	}
}

func TestLoggerCarriesTraceIDs(t *testing.T) {
	var buf strings.Builder
	log, err := NewLogger(&buf, LogJSON, slog.LevelInfo)
	if err != nil {
		t.Fatal(err)
	}
	rcv := tracingtest.Start()
	defer rcv.Close()
	tr, _ := New(Options{Endpoint: rcv.URL(), Service: "test", SamplingRatio: 1})
	defer tr.Shutdown(context.Background())
	r, span := tr.StartServer(httptest.NewRequest(http.MethodGet, "http://x/", nil), "gateway")
	log.InfoContext(r.Context(), "proxying", "revision", "default/hello-00001")
	span.End(200)
	log.Info("no request")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log: %q", buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("not JSON: %q: %v", lines[0], err)
	}
	if rec["msg"] != "proxying" || rec["revision"] != "default/hello-00001" || len(rec["trace_id"].(string)) != 32 || len(rec["span_id"].(string)) != 16 {
		t.Fatalf("line with a request's context: %v", rec)
	}
	if strings.Contains(lines[1], "trace_id") {
		t.Fatalf("a line without a span got a trace id: %q", lines[1])
	}
	if _, err := NewLogger(&buf, "xml", slog.LevelInfo); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Fatalf("NewLogger(xml): %v", err)
	}
}
