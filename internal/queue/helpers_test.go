package queue

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// startUser serves h as the user container on loopback and returns its port.
func startUser(t *testing.T, h http.Handler) int {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return portOf(t, s.URL)
}

func portOf(t *testing.T, rawURL string) int {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// testConfig is a queue-proxy in front of userPort with generous timeouts.
func testConfig(userPort int) Config {
	return Config{UserPort: userPort, Timeout: 10 * time.Second, QuietPeriod: 100 * time.Millisecond, Namespace: "default", Service: "hello",
		Configuration: "hello", Revision: "hello-00001", Pod: "hello-00001-deployment-abc"}
}

// startQueue serves cfg's queue-proxy serving port on loopback as Serve does: the fast path
// in front of the chain (HTTP/1.1 and h2c).
func startQueue(t *testing.T, cfg Config) (*QueueProxy, string) {
	t.Helper()
	q, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := q.servingServer()
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return q, "http://" + l.Addr().String()
}

// get sends a GET with headers and returns the status and the body.
func get(t *testing.T, rawURL string, headers map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body of %s: %v", rawURL, err)
	}
	return resp.StatusCode, string(b)
}

// freePort is a loopback port nobody listens on, a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
