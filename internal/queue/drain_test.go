package queue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveQueue runs Serve on loopback listeners and returns the serving and admin URLs and
// Serve's result.
func serveQueue(t *testing.T, ctx context.Context, cfg Config) (q *QueueProxy, serving, admin string, done <-chan error) {
	t.Helper()
	q, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ls Listeners
	for _, dst := range []*net.Listener{&ls.Serving, &ls.Admin, &ls.Stats, &ls.Metrics} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		*dst = l
	}
	ch := make(chan error, 1)
	go func() { ch <- q.Serve(ctx, ls) }()
	return q, "http://" + ls.Serving.Addr().String(), "http://" + ls.Admin.Addr().String(), ch
}

func TestDrainFailsReadinessKeepsServingAndFinishesEveryRequestInFlight(t *testing.T) {
	release := make(chan struct{})
	port := startUser(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			_, _ = io.WriteString(w, "started ")
			w.(http.Flusher).Flush()
			<-release
		}
		_, _ = io.WriteString(w, "done")
	}))
	cfg := testConfig(port)
	cfg.QuietPeriod = 300 * time.Millisecond
	cfg.DrainTimeout = 10 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q, url, admin, done := serveQueue(t, ctx, cfg)
	waitFor(t, "admin ready", func() bool { code, _ := get(t, admin, nil); return code == http.StatusOK })

	const n = 5
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if code, body := get(t, url+"/slow", nil); code != http.StatusOK || body != "started done" {
				t.Errorf("an in-flight request got %d %q, want 200 \"started done\"", code, body)
			}
		})
	}
	waitFor(t, "requests in flight", func() bool { return q.drainer.inflight.Load() == n })

	cancel() // SIGTERM
	waitFor(t, "readiness failing", func() bool { code, _ := get(t, admin, nil); return code == http.StatusServiceUnavailable })
	if code, body := get(t, url, map[string]string{"K-Network-Probe": "queue"}); code != http.StatusServiceUnavailable {
		t.Errorf("probe header while draining: %d %q, want 503", code, body)
	}
	// Still serving, and asking clients to go elsewhere.
	resp, err := http.Get(url + "/fast")
	if err != nil {
		t.Fatalf("a request during the quiet period: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "done" || !resp.Close {
		t.Errorf("during the quiet period: %d %q close=%v, want 200 \"done\" with Connection: close", resp.StatusCode, b, resp.Close)
	}
	// Once requests stopped arriving the port closes, while the slow ones still run.
	waitFor(t, "the serving port closed", func() bool {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v with requests in flight", err)
	default:
	}
	close(release)
	wg.Wait()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want nil after a clean drain", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the last request")
	}
}

func TestDrainWaitsForAWebsocket(t *testing.T) {
	port := startUser(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		_, _ = io.Copy(io.Discard, brw) // until the client closes
	}))
	cfg := testConfig(port)
	cfg.QuietPeriod = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q, url, _, done := serveQueue(t, ctx, cfg)

	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: hello\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	cancel()
	waitFor(t, "the serving port shut", func() bool { return q.drainer.draining.Load() })
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v with a websocket open", err)
	case <-time.After(300 * time.Millisecond):
	}
	conn.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the websocket closed")
	}
}

func TestDrainIsBoundedByTheDrainTimeout(t *testing.T) {
	port := startUser(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	cfg := testConfig(port)
	cfg.QuietPeriod = 10 * time.Millisecond
	cfg.DrainTimeout = 400 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	q, url, _, done := serveQueue(t, ctx, cfg)
	go func() { _, _ = http.Get(url) }()
	waitFor(t, "the request in flight", func() bool { return q.drainer.inflight.Load() == 1 })
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "1 requests still in flight") {
			t.Errorf("Serve = %v, want the deadline naming 1 request in flight", err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("drain took %v, want about the drain timeout", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the drain timeout")
	}
}

// TestServesOnTheH2CPortToo: with a second serving listener (Knative's h2c port, the
// Gateway API backend of an h2c revision), the queue-proxy serves h2c there as on its serving
// port, and closes both when it stops.
func TestServesOnTheH2CPortToo(t *testing.T) {
	user := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.Proto) }))
	user.Config.Protocols = new(http.Protocols)
	user.Config.Protocols.SetUnencryptedHTTP2(true)
	user.Start()
	t.Cleanup(user.Close)
	cfg := testConfig(portOf(t, user.URL))
	cfg.UserProtocol = "h2c"
	cfg.QuietPeriod = 10 * time.Millisecond
	q, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ls Listeners
	for _, dst := range []*net.Listener{&ls.Serving, &ls.H2C, &ls.Admin, &ls.Stats, &ls.Metrics} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		*dst = l
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- q.Serve(ctx, ls) }()
	waitFor(t, "admin ready", func() bool { code, _ := get(t, "http://"+ls.Admin.Addr().String(), nil); return code == http.StatusOK })

	h2c := &http.Client{Transport: &http.Transport{Protocols: new(http.Protocols)}}
	h2c.Transport.(*http.Transport).Protocols.SetUnencryptedHTTP2(true)
	resp, err := h2c.Get("http://" + ls.H2C.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/2.0" || string(b) != "HTTP/2.0" {
		t.Errorf("through the h2c port: %d %s %q, want 200 over HTTP/2.0 to the user's h2c", resp.StatusCode, resp.Proto, b)
	}
	h2c.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", ls.H2C.Addr().String()); err == nil {
		c.Close()
		t.Error("the h2c port still takes connections after the queue-proxy stopped")
	}
}
