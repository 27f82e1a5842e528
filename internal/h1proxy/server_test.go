package h1proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// route sends every request to addr, setting and dropping what the test asks; it declines
// requests whose path starts with /decline.
type route struct {
	addr    string
	prepare func(r *Request, f *Forward)
	done    chan int
}

func (rt *route) Route(r *Request, f *Forward) bool {
	if strings.HasPrefix(r.Path(), "/decline") {
		return false
	}
	f.Addr = rt.addr
	f.ErrorBody = "test: "
	if rt.prepare != nil {
		rt.prepare(r, f)
	}
	if rt.done != nil {
		f.Done = func(status int) { rt.done <- status }
	}
	return true
}

// fallbackHandler answers what the fast path leaves, saying so.
var fallbackHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Served-By", "fallback")
	body, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "fallback %s %s %s %q", r.Proto, r.Method, r.URL.Path, body)
})

// start runs a Server for rt on loopback and returns its address.
func start(t *testing.T, rt *route) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb := &http.Server{Handler: fallbackHandler}
	fb.Protocols = new(http.Protocols)
	fb.Protocols.SetHTTP1(true)
	fb.Protocols.SetUnencryptedHTTP2(true)
	s := &Server{Handler: rt, Fallback: fb, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 10 * time.Second}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return s, ln.Addr().String()
}

// upstreamServer is an httptest server that counts its connections.
func upstreamServer(t *testing.T, h http.Handler) (addr string, conns *atomic.Int32) {
	t.Helper()
	conns = new(atomic.Int32)
	s := httptest.NewUnstartedServer(h)
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://"), conns
}

// rawUpstream serves each connection with answer, which gets the connection and a reader of
// it; it returns the address.
func rawUpstream(tb testing.TB, answer func(c net.Conn, br *bufio.Reader)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				answer(c, bufio.NewReader(c))
			}()
		}
	}()
	return ln.Addr().String()
}

// exchange writes raw on a new connection and reads one response.
func exchange(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", raw, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body of the answer to %q: %v", raw, err)
	}
	return resp, string(body)
}

func TestForwardsAndKeepsConnections(t *testing.T) {
	up, conns := upstreamServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s host=%s", r.Method, r.URL.RequestURI(), r.Host)
	}))
	_, addr := start(t, &route{addr: up})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	for i := range 20 {
		resp, err := client.Get(fmt.Sprintf("http://%s/path?i=%d", addr, i))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		want := fmt.Sprintf("GET /path?i=%d host=%s", i, addr)
		if resp.StatusCode != http.StatusOK || string(b) != want || resp.Header.Get("X-Served-By") != "" {
			t.Fatalf("answer %d: %d %q (served by %q), want 200 %q from the fast path", i, resp.StatusCode, b, resp.Header.Get("X-Served-By"), want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("the upstream saw %d connections for 20 sequential requests, want 1 (kept alive)", n)
	}
}

func TestRewritesFields(t *testing.T) {
	up, _ := upstreamServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, k := range []string{"X-Set", "X-Drop", "X-Keep", "X-Listed", "Keep-Alive", "Te", "Proxy-Authorization"} {
			fmt.Fprintf(w, "%s=%q\n", k, r.Header.Values(k))
		}
		fmt.Fprintf(w, "host=%s\n", r.Host)
	}))
	_, addr := start(t, &route{addr: up, prepare: func(r *Request, f *Forward) {
		f.Host = "rewritten.example"
		f.Set("X-Set", "new "+r.Get("x-set"))
		f.Drop("X-Drop")
	}})
	_, body := exchange(t, addr, "GET / HTTP/1.1\r\nHost: a.example\r\nX-Set: old\r\nX-Set: older\r\nX-Drop: gone\r\n"+
		"X-Keep: kept\r\nConnection: keep-alive, X-Listed\r\nX-Listed: hop\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"+
		"Proxy-Authorization: secret\r\n\r\n")
	want := `X-Set=["new old"]
X-Drop=[]
X-Keep=["kept"]
X-Listed=[]
Keep-Alive=[]
Te=[]
Proxy-Authorization=[]
host=rewritten.example
`
	if body != want {
		t.Errorf("the upstream saw\n%s\nwant\n%s", body, want)
	}
}

// TestLeavesToFallback: every request the fast path does not take plainly is net/http's,
// which answers (or refuses) it by its own rules.
func TestLeavesToFallback(t *testing.T) {
	up, _ := upstreamServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "upstream") }))
	_, addr := start(t, &route{addr: up})
	for _, tc := range []struct{ name, raw, wantBody string }{
		{"a body", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", `fallback HTTP/1.1 POST /p "abc"`},
		{"a chunked body", "GET /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", `fallback HTTP/1.1 GET /p "abc"`},
		{"HTTP/1.0", "GET /p HTTP/1.0\r\nHost: a\r\n\r\n", `fallback HTTP/1.0 GET /p ""`},
		{"declined by the handler", "GET /decline HTTP/1.1\r\nHost: a\r\n\r\n", `fallback HTTP/1.1 GET /decline ""`},
		{"an upgrade", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", `fallback HTTP/1.1 GET /ws ""`},
		{"Expect", "GET /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", `fallback HTTP/1.1 GET /e ""`},
		{"another method", "DELETE /d HTTP/1.1\r\nHost: a\r\n\r\n", `fallback HTTP/1.1 DELETE /d ""`},
		{"bare LF", "GET /lf HTTP/1.1\nHost: a\n\n", `fallback HTTP/1.1 GET /lf ""`},
		{"Content-Length and Transfer-Encoding", "GET /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", `fallback HTTP/1.1 GET /cl ""`},
		{"a large head", "GET /big HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("b", 20<<10) + "\r\n\r\n", `fallback HTTP/1.1 GET /big ""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := exchange(t, addr, tc.raw)
			if resp.Header.Get("X-Served-By") != "fallback" || body != tc.wantBody {
				t.Errorf("answer %d %q (served by %q), want %q from the fallback", resp.StatusCode, body, resp.Header.Get("X-Served-By"), tc.wantBody)
			}
		})
	}
	// What net/http refuses stays refused: the fast path must not forward it either.
	for _, tc := range []struct{ name, raw string }{
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"},
		{"no Host", "GET / HTTP/1.1\r\n\r\n"},
		{"a space before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := exchange(t, addr, tc.raw)
			if resp.StatusCode != http.StatusBadRequest || body == "upstream" {
				t.Errorf("answer %d %q, want net/http's 400", resp.StatusCode, body)
			}
		})
	}
}

func TestHandsOverH2C(t *testing.T) {
	up, _ := upstreamServer(t, http.NotFoundHandler())
	_, addr := start(t, &route{addr: up})
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: &p}}
	resp, err := c.Get("http://" + addr + "/h2")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(b) != `fallback HTTP/2.0 GET /h2 ""` {
		t.Errorf("h2c answer %q, want the fallback's over HTTP/2", b)
	}
}

func TestResponseFramings(t *testing.T) {
	up, _ := upstreamServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			w.Header().Set("Trailer", "X-Sum")
			_, _ = io.WriteString(w, "one ")
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "two")
			w.Header().Set("X-Sum", "2")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/notmodified":
			w.WriteHeader(http.StatusNotModified)
		case "/hints":
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			_, _ = io.WriteString(w, "after hints")
		default:
			_, _ = io.WriteString(w, "sized body")
		}
	}))
	_, addr := start(t, &route{addr: up})
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/sized", 200, "sized body"},
		{"HEAD", "/sized", 200, ""},
		{"GET", "/chunked", 200, "one two"},
		{"GET", "/empty", 204, ""},
		{"GET", "/notmodified", 304, ""},
		{"GET", "/hints", 200, "after hints"},
	} {
		// Several requests on one connection: each answer must end where it ends.
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		for range 3 {
			fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: a\r\n\r\n", tc.method, tc.path)
			req, _ := http.NewRequest(tc.method, tc.path, nil)
			resp, err := http.ReadResponse(br, req)
			if err == nil && resp.StatusCode == http.StatusEarlyHints {
				if resp.Header.Get("Link") == "" {
					t.Errorf("103 without its Link")
				}
				resp, err = http.ReadResponse(br, req)
			}
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.path, err)
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != tc.code || string(b) != tc.body {
				t.Fatalf("%s %s: %d %q %v, want %d %q", tc.method, tc.path, resp.StatusCode, b, err, tc.code, tc.body)
			}
			if tc.path == "/chunked" && resp.Trailer.Get("X-Sum") != "2" {
				t.Errorf("trailer X-Sum = %q, want 2", resp.Trailer.Get("X-Sum"))
			}
		}
		_ = c.Close()
	}
}

// TestUntilCloseBody: an answer that ends when the upstream closes reaches the client whole,
// and the client is told the connection closes after it.
func TestUntilCloseBody(t *testing.T) {
	up := rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
		_, _ = peekHead(br)
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
	})
	_, addr := start(t, &route{addr: up})
	resp, body := exchange(t, addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if body != "until the end" || !resp.Close {
		t.Errorf("answer %q close=%v, want the whole body and Connection: close", body, resp.Close)
	}
}

func TestStreamsAsItComes(t *testing.T) {
	next := make(chan struct{})
	up, _ := upstreamServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			<-next
		}
	}))
	_, addr := start(t, &route{addr: up})
	resp, err := http.Get("http://" + addr + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		_, _ = br.ReadString('\n')
		next <- struct{}{} // the next event is sent only once this one arrived
	}
}

// TestRetriesAClosedKeptConnection: the upstream closes idle connections quickly; a request
// on a kept connection it had closed is sent again on a new one.
func TestRetriesAClosedKeptConnection(t *testing.T) {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	s.Config.IdleTimeout = 20 * time.Millisecond
	s.Start()
	defer s.Close()
	_, addr := start(t, &route{addr: strings.TrimPrefix(s.URL, "http://")})
	for i := range 3 {
		resp, body := exchange(t, addr, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		if resp.StatusCode != http.StatusOK || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestTimeouts(t *testing.T) {
	up, _ := upstreamServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
				return
			}
		}
		_, _ = io.WriteString(w, "first ")
		w.(http.Flusher).Flush()
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "late")
	}))
	for _, tc := range []struct {
		name               string
		path               string
		start, total, idle time.Duration
		wantCode           int
		wantBody           string
		wantCut            bool
	}{
		{name: "response start", path: "/slow", start: 100 * time.Millisecond, wantCode: 504, wantBody: "timed out\n"},
		{name: "total before the answer", path: "/slow", total: 100 * time.Millisecond, wantCode: 504, wantBody: "timed out\n"},
		{name: "idle before the answer", path: "/slow", idle: 100 * time.Millisecond, wantCode: 504, wantBody: "timed out\n"},
		{name: "total after the answer began", path: "/stream", total: 200 * time.Millisecond, wantCode: 200, wantBody: "first ", wantCut: true},
		{name: "idle after the answer began", path: "/stream", idle: 200 * time.Millisecond, wantCode: 200, wantBody: "first ", wantCut: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan int, 1)
			_, addr := start(t, &route{addr: up, done: done, prepare: func(_ *Request, f *Forward) {
				f.ResponseStart, f.Total, f.Idle, f.TimeoutBody = tc.start, tc.total, tc.idle, "timed out\n"
			}})
			began := time.Now()
			resp, err := http.Get("http://" + addr + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tc.wantCode || string(b) != tc.wantBody || (err != nil) != tc.wantCut {
				t.Errorf("answer %d %q (err %v), want %d %q cut=%v", resp.StatusCode, b, err, tc.wantCode, tc.wantBody, tc.wantCut)
			}
			if took := time.Since(began); took > 2*time.Second {
				t.Errorf("took %v", took)
			}
			if got := <-done; got != tc.wantCode {
				t.Errorf("Done got status %d, want %d", got, tc.wantCode)
			}
		})
	}
}

// TestClientLeaving: a client that closes its connection while the answer is awaited ends the
// upstream's request too (its context is cancelled), as net/http's server does.
func TestClientLeaving(t *testing.T) {
	up, cancelled := waitingUpstream(t)
	done := make(chan int, 1)
	_, addr := start(t, &route{addr: up, done: done})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(200 * time.Millisecond)
	_ = c.Close()
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("the upstream's request went on after its client left")
	}
	if got := <-done; got != 0 {
		t.Errorf("Done got %d for a client that left, want 0", got)
	}
}

// TestClientLeavingAfterTheIdleTimeout: a request that arrived whole leaves the connection's
// idle deadline on it; the watcher, started once the answer is slow, must not stop at it, so a
// client that leaves after the idle timeout is still noticed.
func TestClientLeavingAfterTheIdleTimeout(t *testing.T) {
	up, cancelled := waitingUpstream(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: &route{addr: up}, Fallback: &http.Server{Handler: fallbackHandler},
		ReadHeaderTimeout: time.Second, IdleTimeout: 100 * time.Millisecond}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(400 * time.Millisecond)
	_ = c.Close()
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("the upstream's request went on after its client left")
	}
}

// waitingUpstream answers nothing for 5 s; cancelled is closed when its one request is
// cancelled (its client, the hop, closed the connection).
func waitingUpstream(t *testing.T) (addr string, cancelled <-chan struct{}) {
	t.Helper()
	c := make(chan struct{})
	addr, _ = upstreamServer(t, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			close(c)
		case <-time.After(5 * time.Second):
		}
	}))
	return addr, c
}

// TestPipelinedDuringSlowAnswer: a client that sends its next request while the answer to the
// first is slow (so the watcher reads) gets both answers, in order.
func TestPipelinedDuringSlowAnswer(t *testing.T) {
	up, _ := upstreamServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(200 * time.Millisecond)
		}
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	_, addr := start(t, &route{addr: up})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(100 * time.Millisecond)
	_, _ = io.WriteString(c, "GET /second HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []string{"/slow", "/second"} {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != want {
			t.Errorf("answer %q, want %q", b, want)
		}
	}
}

func TestBadUpstreams(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	_ = dead.Close()
	raw := func(answer string) string {
		return rawUpstream(t, func(c net.Conn, br *bufio.Reader) {
			_, _ = peekHead(br)
			_, _ = io.WriteString(c, answer)
			time.Sleep(time.Second)
		})
	}
	for _, tc := range []struct{ name, addr string }{
		{"nobody listens", deadAddr},
		{"bare LF", raw("HTTP/1.1 200 OK\nContent-Length: 2\n\nhi")},
		{"two lengths", raw("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi")},
		{"not HTTP", raw("SSH-2.0-OpenSSH\r\n\r\n")},
		{"switching protocols unasked", raw("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n")},
		{"a bad chunk", raw("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, addr := start(t, &route{addr: tc.addr})
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if tc.name == "a bad chunk" {
				// The head went out before the chunk was seen: the answer is cut.
				if err == nil {
					_, err = io.ReadAll(resp.Body)
				}
				if err == nil {
					t.Error("a malformed chunk passed as a whole answer")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadGateway || !strings.HasPrefix(string(b), "test: ") {
				t.Errorf("answer %d %q, want 502 with the error body", resp.StatusCode, b)
			}
		})
	}
}

// TestShutdown: idle connections close at once; a request in flight finishes first.
func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	up, _ := upstreamServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		_, _ = io.WriteString(w, "done")
	}))
	s, addr := start(t, &route{addr: up})
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	_, _ = io.WriteString(idle, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(br, nil); err != nil {
		t.Fatal(err)
	} else {
		_, _ = io.ReadAll(resp.Body)
	}
	var wg sync.WaitGroup
	var slowBody string
	wg.Go(func() {
		resp, err := http.Get("http://" + addr + "/slow")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			slowBody = string(b)
			_ = resp.Body.Close()
		}
	})
	time.Sleep(100 * time.Millisecond)
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	_ = idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Error("the idle connection was not closed at shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	wg.Wait()
	if slowBody != "done" {
		t.Errorf("the request in flight got %q, want it finished", slowBody)
	}
}

// waitingRoute waits on the request's context before it replies or sends the request on,
// as the activator waits for a pod.
type waitingRoute struct {
	addr    string
	release chan struct{}
	ended   chan error // the context's error when the wait ended
	done    chan int
}

func (wr *waitingRoute) Route(r *Request, f *Forward) bool {
	f.Done = func(status int) { wr.done <- status }
	select {
	case <-wr.release:
		wr.ended <- nil
	case <-r.Context().Done():
		wr.ended <- r.Context().Err()
		return true
	}
	if r.Path() == "/full" {
		f.Reply(http.StatusServiceUnavailable, "queue full\n")
		return true
	}
	f.Addr = wr.addr
	return true
}

// TestRouteWaits: a Route may wait; its context ends when the client leaves, and a Route
// may answer itself (Reply) on a connection that then goes on.
func TestRouteWaits(t *testing.T) {
	up, _ := upstreamServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "from upstream") }))
	wr := &waitingRoute{addr: up, release: make(chan struct{}), ended: make(chan error, 1), done: make(chan int, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: wr, Fallback: &http.Server{Handler: fallbackHandler}}
	go func() { _ = s.Serve(ln) }()
	defer s.Close()

	// The client leaves while the Route waits.
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "GET /a HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(100 * time.Millisecond)
	_ = c.Close()
	select {
	case err := <-wr.ended:
		if err == nil {
			t.Fatal("the wait ended without its context")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the Route's context did not end when its client left")
	}
	if got := <-wr.done; got != 0 {
		t.Errorf("Done got %d for a client that left, want 0", got)
	}

	// A reply, then a request sent on, on one connection.
	c, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for _, tc := range []struct {
		path string
		code int
		body string
	}{{"/full", 503, "queue full\n"}, {"/next", 200, "from upstream"}} {
		_, _ = fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", tc.path)
		time.Sleep(50 * time.Millisecond)
		wr.release <- struct{}{}
		<-wr.ended
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.code || string(b) != tc.body {
			t.Errorf("%s: %d %q, want %d %q", tc.path, resp.StatusCode, b, tc.code, tc.body)
		}
		if got := <-wr.done; got != tc.code {
			t.Errorf("%s: Done got %d, want %d", tc.path, got, tc.code)
		}
	}
}

// TestClientAsksToClose: a request with Connection: close gets its answer marked so, and then
// the connection closes.
func TestClientAsksToClose(t *testing.T) {
	up, _ := upstreamServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "bye") }))
	_, addr := start(t, &route{addr: up})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	all, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading until the close: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(all))), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if !resp.Close || string(b) != "bye" {
		t.Errorf("answer %q close=%v, want bye with Connection: close", b, resp.Close)
	}
}
