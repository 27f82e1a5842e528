package loadbalancer

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// TestFailsOverToTheNextServer: requests through the proxy reach the first server; once it is
// gone they reach the second, which stays in use when the first comes back.
func TestFailsOverToTheNextServer(t *testing.T) {
	a, b := serve("a"), serve("b")
	lb, err := New([]string{a.URL, b.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer run(t, lb)()
	// The clients verify the servers' certificate through the proxy: it passes TLS through.
	get := getter(t, a, lb)
	if got := get(); got != "a" {
		t.Fatalf("first request reached %q, want a", got)
	}
	aAddr := strings.TrimPrefix(a.URL, "https://")
	a.Close()
	if got := get(); got != "b" {
		t.Fatalf("with a gone, the request reached %q, want b", got)
	}
	if lb.Server() == aAddr {
		t.Errorf("the server in use is still %s", aAddr)
	}
	if err := lb.Check(context.Background()); err != nil {
		t.Errorf("Check with b up: %v", err)
	}
	b.Close()
	if err := lb.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("Check with every server gone = %v, want connection refused", err)
	}
	if _, err := New([]string{"http://x:1"}, nil); err == nil {
		t.Error("New accepted a URL that is not https")
	}
}

func TestMergeKeepsTheGivenFirst(t *testing.T) {
	got := Merge([]string{"10.0.0.1:6443", "10.0.0.2:6443"}, []string{"10.0.0.3:6443", "10.0.0.1:6443", "", "10.0.0.3:6443"})
	want := []string{"10.0.0.1:6443", "10.0.0.2:6443", "10.0.0.3:6443"}
	if !slices.Equal(got, want) {
		t.Errorf("Merge = %v, want %v", got, want)
	}
	if got := Merge([]string{"a:1"}, nil); !slices.Equal(got, []string{"a:1"}) {
		t.Errorf("Merge with nothing learned = %v", got)
	}
}

// TestUsesALearnedServer: a proxy given one server learns a second; once the first is gone,
// requests reach the learned one, and a later list without the first keeps it as a fallback.
func TestUsesALearnedServer(t *testing.T) {
	a, b := serve("a"), serve("b")
	defer b.Close()
	lb, err := New([]string{a.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer run(t, lb)()
	get := getter(t, a, lb)
	aAddr, bAddr := strings.TrimPrefix(a.URL, "https://"), strings.TrimPrefix(b.URL, "https://")
	if !lb.SetLearned([]string{bAddr, aAddr}) {
		t.Fatal("SetLearned with a new server says nothing changed")
	}
	if lb.SetLearned([]string{aAddr, bAddr}) {
		t.Error("SetLearned with the same servers says the list changed")
	}
	if got := get(); got != "a" {
		t.Fatalf("the first request reached %q, want a (given first)", got)
	}
	a.Close()
	if got := get(); got != "b" {
		t.Fatalf("with a gone, the request reached %q, want the learned b", got)
	}
	// The cluster no longer lists a: it stays, after b, and b stays in use.
	lb.SetLearned([]string{bAddr})
	if got, want := lb.Servers(), []string{aAddr, bAddr}; !slices.Equal(got, want) {
		t.Errorf("servers = %v, want %v", got, want)
	}
	if lb.Server() != bAddr {
		t.Errorf("the server in use is %s, want %s", lb.Server(), bAddr)
	}
}

// serve is a TLS server that answers its name.
func serve(name string) *httptest.Server {
	return httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) }))
}

// run starts lb; the function it returns stops it.
func run(t *testing.T, lb *LoadBalancer) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Start(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// getter sends GET through lb with a client that trusts s's certificate (every test server's),
// a new connection each time, and returns the body.
func getter(t *testing.T, s *httptest.Server, lb *LoadBalancer) func() string {
	client := s.Client()
	client.Transport.(*http.Transport).DisableKeepAlives = true
	return func() string {
		t.Helper()
		resp, err := client.Get(lb.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
}
