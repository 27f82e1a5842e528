package h1transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// server is a real HTTP server on loopback that counts the connections it accepted.
func server(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	s := httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s, &conns
}

// fallback counts the requests the Transport hands on.
type fallback struct {
	rt http.RoundTripper
	n  atomic.Int64
}

func (f *fallback) RoundTrip(r *http.Request) (*http.Response, error) {
	f.n.Add(1)
	return f.rt.RoundTrip(r)
}

func newTransport() (*Transport, *fallback) {
	fb := &fallback{rt: &http.Transport{}}
	return &Transport{Fallback: fb}, fb
}

func get(t *testing.T, c *http.Client, method, u string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, u, err)
	}
	return resp.StatusCode, string(b)
}

func TestKeepsOneConnectionForSequentialRequests(t *testing.T) {
	s, conns := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Length", "5")
			return
		}
		if r.URL.Path == "/empty" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.URL.Path == "/chunked" {
			for i := range 3 {
				fmt.Fprintf(w, "part%d ", i)
				w.(http.Flusher).Flush()
			}
			return
		}
		_, _ = io.WriteString(w, "hello "+r.URL.Path)
	}))
	tr, fb := newTransport()
	c := &http.Client{Transport: tr}
	for i := range 20 {
		path := []string{"/a", "/empty", "/chunked"}[i%3]
		code, body := get(t, c, http.MethodGet, s.URL+path)
		want := map[string]string{"/a": "hello /a", "/empty": "", "/chunked": "part0 part1 part2 "}[path]
		if body != want || code/100 != 2 {
			t.Fatalf("GET %s: %d %q, want %q", path, code, body, want)
		}
	}
	if code, body := get(t, c, http.MethodHead, s.URL+"/a"); code != 200 || body != "" {
		t.Fatalf("HEAD: %d %q", code, body)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 21 sequential requests, want 1", n)
	}
	if n := fb.n.Load(); n != 0 {
		t.Errorf("%d requests went to the fallback, want 0", n)
	}
}

func TestOtherRequestsGoToTheFallback(t *testing.T) {
	s, _ := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	}))
	tr, fb := newTransport()
	c := &http.Client{Transport: tr}
	resp, err := c.Post(s.URL, "text/plain", strings.NewReader("a body"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "a body" {
		t.Fatalf("POST echoed %q", b)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL, nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
	}
	if n := fb.n.Load(); n != 2 {
		t.Errorf("%d requests went to the fallback, want 2 (a POST, an upgrade)", n)
	}
}

// TestSendsAgainWhenTheServerClosedTheKeptConnection: a server that closes each connection
// after one answer, without saying so; the next GET finds its kept connection closed and is
// sent again on a new one.
func TestSendsAgainWhenTheServerClosedTheKeptConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer nc.Close()
				req, err := http.ReadRequest(bufio.NewReader(nc))
				if err != nil {
					return
				}
				_, _ = fmt.Fprintf(nc, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(req.URL.Path), req.URL.Path)
			}()
		}
	}()
	tr, _ := newTransport()
	c := &http.Client{Transport: tr}
	for _, p := range []string{"/one", "/two", "/three"} {
		if code, body := get(t, c, http.MethodGet, "http://"+ln.Addr().String()+p); code != 200 || body != p {
			t.Fatalf("GET %s: %d %q", p, code, body)
		}
		time.Sleep(20 * time.Millisecond) // the server's close reaches the client
	}
	if n := accepted.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

// TestCancelledRequestStopsWaiting: a request whose context ends while the server is silent
// returns at once, and its connection is not used again.
func TestCancelledRequestStopsWaiting(t *testing.T) {
	release := make(chan struct{})
	s, conns := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer close(release)
	tr, _ := newTransport()
	c := &http.Client{Transport: tr}
	get(t, c, http.MethodGet, s.URL+"/fast")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/slow", nil)
	start := time.Now()
	_, err := c.Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's deadline", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the cancelled request returned after %s", took)
	}
	get(t, c, http.MethodGet, s.URL+"/fast")
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the cancelled one is not used again)", n)
	}
}

// TestBodyNotReadToItsEndClosesTheConnection: an answer closed before its end leaves unread
// bytes on the connection, which is then not used again; one with Connection: close neither.
func TestBodyNotReadToItsEndClosesTheConnection(t *testing.T) {
	s, conns := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		_, _ = io.WriteString(w, strings.Repeat("x", 100000))
	}))
	tr, _ := newTransport()
	c := &http.Client{Transport: tr}
	resp, err := c.Get(s.URL + "/big")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadFull(resp.Body, make([]byte, 10))
	resp.Body.Close()
	get(t, c, http.MethodGet, s.URL+"/close")
	get(t, c, http.MethodGet, s.URL+"/big")
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

// TestBehindReverseProxy: the Transport under httputil.ReverseProxy, as the queue-proxy and
// the activator use it, keeps the client's Host, path, query and headers.
func TestBehindReverseProxy(t *testing.T) {
	s, conns := server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s %s", r.Host, r.URL.RequestURI(), r.Header.Get("X-Test"), r.Header.Get("User-Agent"))
	}))
	u, _ := url.Parse(s.URL)
	p := httputil.NewSingleHostReverseProxy(u)
	tr, _ := newTransport()
	p.Transport = tr
	front := httptest.NewServer(p)
	defer front.Close()
	for range 5 {
		req, _ := http.NewRequest(http.MethodGet, front.URL+"/p/a?q=1&r=2", nil)
		req.Host = "hello.default.example.com"
		req.Header.Set("X-Test", "yes")
		req.Header.Set("User-Agent", "tester")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "hello.default.example.com /p/a?q=1&r=2 yes tester"; string(b) != want {
			t.Fatalf("upstream saw %q, want %q", b, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d upstream connections for 5 proxied requests, want 1", n)
	}
}

// A connection kept for an address nobody asks for again (a pod that is gone) is closed
// once it has been idle for IdleTimeout, not kept open for ever.
func TestIdleConnectionsAreClosedAfterTheTimeout(t *testing.T) {
	var closed atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			closed.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	tr, _ := newTransport()
	tr.IdleTimeout = 100 * time.Millisecond
	if code, _ := get(t, &http.Client{Transport: tr}, http.MethodGet, s.URL); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for closed.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle connection was still open 10 s after a 100 ms idle timeout")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
