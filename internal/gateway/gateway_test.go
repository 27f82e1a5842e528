package gateway

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
)

// recorder is a Revisions that remembers what it was handed.
type recorder struct {
	ns, name string
	header   http.Header
}

func (r *recorder) ServeRevision(w http.ResponseWriter, req *http.Request, ns, name string) {
	r.ns, r.name, r.header = ns, name, req.Header.Clone()
	w.WriteHeader(http.StatusNoContent)
}

func TestServeHTTPRoutesAndForwards(t *testing.T) {
	rec := &recorder{}
	g := New(Options{Revisions: rec})
	path := netv1alpha1.HTTPIngressPath{Splits: []netv1alpha1.IngressBackendSplit{split("hello-1", 100)}}
	path.Splits[0].AppendHeaders = map[string]string{"Knative-Serving-Revision": "hello-1"}
	g.table.Store(buildTable([]netv1alpha1.Ingress{ingress("hello", time.Now(),
		httpRule(netv1alpha1.IngressVisibilityExternalIP, []string{"hello.ns.localhost"}, path))}))

	req := httptest.NewRequest(http.MethodGet, "http://hello.ns.localhost:8080/x", nil)
	req.RemoteAddr = "192.0.2.7:5555"
	req.Header.Set("X-Forwarded-For", "198.51.100.1")
	w := httptest.NewRecorder()
	g.serveHTTP(w, req, false)
	if w.Code != http.StatusNoContent || rec.ns != "ns" || rec.name != "hello-1" {
		t.Fatalf("served %d by %s/%s", w.Code, rec.ns, rec.name)
	}
	for h, want := range map[string]string{
		"X-Forwarded-For":          "198.51.100.1, 192.0.2.7",
		"X-Forwarded-Proto":        "http",
		"Forwarded":                `for=192.0.2.7;host="hello.ns.localhost:8080";proto=http`,
		"K-Original-Host":          "hello.ns.localhost:8080",
		"Knative-Serving-Revision": "hello-1",
	} {
		if got := rec.header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}

	w = httptest.NewRecorder()
	g.serveHTTP(w, httptest.NewRequest(http.MethodGet, "http://other.ns.localhost/", nil), false)
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), `"other.ns.localhost"`) {
		t.Errorf("unknown host: %d %q, want 404 naming the host", w.Code, w.Body.String())
	}
}

// A listener with its own Handler serves with it, beside a listener that routes by host.
func TestListenerWithHandler(t *testing.T) {
	g := New(Options{Revisions: &recorder{}, Listeners: []Listener{
		{Addr: "127.0.0.1:0"},
		{Addr: "127.0.0.1:0", Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })},
	}})
	for range g.opts.Listeners {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		g.listeners = append(g.listeners, ln)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.serve(ctx) }()
	defer func() { cancel(); <-done }()
	<-g.serving
	for i, want := range []int{http.StatusNotFound, http.StatusTeapot} {
		resp, err := http.Get("http://" + g.Addrs()[i] + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("listener %d: %d, want %d", i, resp.StatusCode, want)
		}
	}
}
