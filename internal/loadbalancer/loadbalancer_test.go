package loadbalancer

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestFailsOverToTheNextServer: requests through the proxy reach the first server; once it is
// gone they reach the second, which stays in use when the first comes back.
func TestFailsOverToTheNextServer(t *testing.T) {
	serve := func(name string) *httptest.Server {
		s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) }))
		return s
	}
	a, b := serve("a"), serve("b")
	defer b.Close()
	lb, err := New([]string{a.URL, b.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lb.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	// The clients verify the servers' certificate through the proxy: it passes TLS through.
	client := a.Client()
	client.Transport.(*http.Transport).DisableKeepAlives = true
	get := func() string {
		t.Helper()
		resp, err := client.Get(lb.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
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
	if _, err := New([]string{"http://x:1"}, nil); err == nil {
		t.Error("New accepted a URL that is not https")
	}
}
