package connpass

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gantry-run/gantry/internal/forwarded"
	"github.com/gantry-run/gantry/internal/h1proxy"
)

func TestPassEncoding(t *testing.T) {
	p := &pass{host: "a.test:8080", client: "127.0.0.1:4000", set: [][2]string{{"X-Route", "r1"}, {"K", ""}}, buffered: []byte("GET / HTTP/1.1\r\n\r\n")}
	b, err := p.encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodePass(b)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(p) {
		t.Errorf("decoded %+v, want %+v", got, p)
	}
	for n := range len(b) - len(p.buffered) {
		if _, err := decodePass(b[:n]); err == nil {
			t.Errorf("a pass cut to %d bytes decoded", n)
		}
	}
	many := &pass{set: make([][2]string, maxFields+1)}
	if _, err := many.encode(); err == nil {
		t.Error("a pass with too many fields encoded")
	}
	cookie, again, buffered, err := decodeReturn(encodeReturn(42, true, []byte("rest")))
	if err != nil || cookie != 42 || !again || string(buffered) != "rest" {
		t.Errorf("return decoded as %d %v %q %v", cookie, again, buffered, err)
	}
	if _, _, _, err := decodeReturn([]byte{kindReturn, 1, 2}); err == nil {
		t.Error("a short return decoded")
	}
}

// rig is a gateway and a queue-proxy in one process, both h1proxy servers in front of one app
// that echoes what it was sent: the gateway passes connections for host a.test to the
// queue-proxy, and serves everything else itself.
type rig struct {
	gw, qp   *h1proxy.Server
	gwAddr   string
	passer   *Passer
	receiver *Receiver
	served   atomic.Int64
}

// echo is what the app saw of a request.
type echo struct {
	Host    string
	Headers map[string]string
}

func newRig(t *testing.T, lease time.Duration) *rig {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := echo{Host: r.Host, Headers: map[string]string{}}
		for _, h := range []string{"X-Forwarded-For", "Forwarded", "X-Forwarded-Proto", "K-Original-Host", "X-Route", "X-Path", "X-Custom", "K-Proxy-Request"} {
			e.Headers[h] = strings.Join(r.Header.Values(h), "; ")
		}
		_ = json.NewEncoder(w).Encode(e)
	}))
	t.Cleanup(app.Close)
	appAddr := app.Listener.Addr().String()
	rg := &rig{}

	// The queue-proxy sends what it is given on to the app, marked as its own.
	rg.qp = &h1proxy.Server{Handler: routeFunc(func(_ *h1proxy.Request, f *h1proxy.Forward) bool {
		f.Addr = appAddr
		f.Set("X-Path", "qp")
		return true
	}), Fallback: &http.Server{Handler: http.NotFoundHandler()}}
	sock := filepath.Join(t.TempDir(), "pass.sock")
	ln, err := net.Listen("unixpacket", sock)
	if err != nil {
		t.Fatal(err)
	}
	rg.receiver = &Receiver{Server: rg.qp, Peer: "10.0.0.1:0", Lease: lease}
	go func() { _ = rg.receiver.Serve(ln) }()
	t.Cleanup(func() { _ = ln.Close(); _ = rg.qp.Close() })

	// The gateway adds what the real one adds, and passes connections for a.test.
	rg.passer = &Passer{Dial: func(ctx context.Context, _ string) (*net.UnixConn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unixpacket", sock)
		if err != nil {
			return nil, err
		}
		return c.(*net.UnixConn), nil
	}}
	rg.gw = &h1proxy.Server{Handler: routeFunc(func(r *h1proxy.Request, f *h1proxy.Forward) bool {
		f.Addr = appAddr
		f.Set("X-Route", "r1")
		xff, fwd := forwarded.Values(r.RemoteAddr, r.Host, r.Values("X-Forwarded-For"), r.Values("Forwarded"))
		f.Set("X-Forwarded-For", xff)
		f.Set("X-Forwarded-Proto", "http")
		f.Set("Forwarded", fwd)
		f.Set("K-Original-Host", r.Host)
		f.Set("X-Path", "gw")
		return true
	}), Fallback: &http.Server{Handler: http.NotFoundHandler()}}
	rg.gw.Pass = func(r *h1proxy.Request, nc net.Conn, buffered []byte) bool {
		if r.Host != "a.test" {
			return false
		}
		return rg.passer.Pass("pod", nc, r.Host, r.RemoteAddr, [][2]string{{"X-Route", "r1"}}, buffered,
			Back{Server: rg.gw, Served: func(int, time.Duration) { rg.served.Add(1) }})
	}
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rg.gwAddr = gln.Addr().String()
	go func() { _ = rg.gw.Serve(gln) }()
	t.Cleanup(func() { _ = rg.gw.Close() })
	return rg
}

type routeFunc func(*h1proxy.Request, *h1proxy.Forward) bool

func (f routeFunc) Route(r *h1proxy.Request, fw *h1proxy.Forward) bool { return f(r, fw) }

// client is one kept connection to the gateway.
type client struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func (rg *rig) dial(t *testing.T) *client {
	t.Helper()
	nc, err := net.Dial("tcp", rg.gwAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &client{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// get sends a GET for host on the connection and returns what the app saw.
func (c *client) get(host string) echo { return c.send(host, "") }

// send sends a GET for host, with the extra header lines more, and returns what the app saw.
func (c *client) send(host, more string) echo {
	c.t.Helper()
	_ = c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c.nc, "GET /x HTTP/1.1\r\nHost: %s\r\nX-Custom: kept\r\nX-Forwarded-For: 192.0.2.9\r\nK-Proxy-Request: activator\r\n%s\r\n", host, more); err != nil {
		c.t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var e echo
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != http.StatusOK {
		c.t.Fatalf("answer %d: %v", resp.StatusCode, err)
	}
	return e
}

func TestPassedConnectionIsServedAsTheGatewayWould(t *testing.T) {
	rg := newRig(t, time.Minute)
	// A request that closes its connection is not passed: what the gateway sends.
	first := rg.dial(t).send("a.test", "Connection: close\r\n")
	if first.Headers["X-Path"] != "gw" {
		t.Fatalf("a request closing its connection went by %q, want the gateway", first.Headers["X-Path"])
	}
	c := rg.dial(t)
	for i := range 3 {
		next := c.get("a.test")
		if next.Headers["X-Path"] != "qp" {
			t.Fatalf("request %d went by %q, want the queue-proxy the connection was passed to", i+1, next.Headers["X-Path"])
		}
		for _, h := range []string{"X-Forwarded-For", "Forwarded", "X-Forwarded-Proto", "K-Original-Host", "X-Route", "X-Custom"} {
			if next.Headers[h] != first.Headers[h] {
				t.Errorf("request %d: %s = %q, the gateway sent %q", i+2, h, next.Headers[h], first.Headers[h])
			}
		}
		if next.Host != first.Host {
			t.Errorf("request %d: Host %q, the gateway sent %q", i+2, next.Host, first.Host)
		}
		// A client cannot mark its own requests as the activator's.
		if v := next.Headers["K-Proxy-Request"]; v != "" {
			t.Errorf("request %d reached the app with the client's K-Proxy-Request %q", i+2, v)
		}
	}
	if passed, returned := rg.passer.Counts(); passed != 1 || returned != 0 {
		t.Errorf("passed %d, returned %d; want 1 and 0", passed, returned)
	}
	// The queue-proxy reports the requests it served, for the gateway's metrics.
	deadline := time.Now().Add(5 * time.Second)
	for rg.served.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := rg.served.Load(); n != 3 {
		t.Errorf("the gateway heard of %d requests served on the passed connection, want 3", n)
	}
}

// The forwarding fields follow each request's own, on a connection whose requests differ.
func TestForwardingFieldsFollowEachRequest(t *testing.T) {
	rg := newRig(t, time.Minute)
	variants := []string{"", "X-Forwarded-For: 198.51.100.1\r\n", "Forwarded: for=198.51.100.2\r\n", "",
		"Forwarded: for=198.51.100.3\r\n"}
	c := rg.dial(t)
	for i, more := range variants {
		// The gateway's own answer to the same request, on a connection it does not pass.
		want := rg.dial(t).send("a.test", more+"Connection: close\r\n")
		got := c.send("a.test", more)
		if got.Headers["X-Path"] != "qp" {
			t.Fatalf("request %d went by %q, want the queue-proxy", i+1, got.Headers["X-Path"])
		}
		for _, h := range []string{"X-Forwarded-For", "Forwarded"} {
			if got.Headers[h] != want.Headers[h] {
				t.Errorf("request %d (%q): %s = %q, the gateway sent %q", i+1, more, h, got.Headers[h], want.Headers[h])
			}
		}
	}
}

// A link that holds as many served requests as a message takes sends them at once, without
// waiting for servedFlush, and goes on holding the next ones.
func TestServedRequestsGoOutWhenAMessageIsFull(t *testing.T) {
	ends := linkEnds(t)
	l := &receiverLink{r: &Receiver{}, uc: ends[0]}
	const n = maxServed + 5
	for range n {
		l.record(http.StatusOK, time.Millisecond)
	}
	// The first maxServed arrive well before servedFlush, the other 5 after it.
	buf := make([]byte, maxMessage)
	got, start := 0, time.Now()
	for got < n {
		_ = ends[1].SetReadDeadline(time.Now().Add(10 * servedFlush))
		m, err := ends[1].Read(buf)
		if err != nil {
			t.Fatalf("after %d of %d served requests: %v", got, n, err)
		}
		if buf[0] != kindServed || (m-1)%servedRecord != 0 {
			t.Fatalf("a message of kind %q and %d bytes, want served requests", buf[0], m)
		}
		if got == 0 && time.Since(start) >= servedFlush {
			t.Errorf("a full message came after %v, want it sent at once", time.Since(start))
		}
		got += (m - 1) / servedRecord
	}
	if got != n {
		t.Errorf("the gateway heard of %d served requests, want %d", got, n)
	}
}

func TestAnotherHostComesBackForGood(t *testing.T) {
	rg := newRig(t, time.Minute)
	c := rg.dial(t)
	if e := c.get("a.test"); e.Headers["X-Path"] != "qp" {
		t.Fatalf("request went by %q, want the queue-proxy", e.Headers["X-Path"])
	}
	// A request for a host the queue-proxy was not given goes back, unread, to the gateway,
	// which keeps the connection from then on.
	if e := c.get("b.test"); e.Headers["X-Path"] != "gw" || e.Host != "b.test" {
		t.Errorf("request for b.test went by %q with Host %q, want the gateway", e.Headers["X-Path"], e.Host)
	}
	if e := c.get("a.test"); e.Headers["X-Path"] != "gw" {
		t.Errorf("after it came back, a request went by %q, want the gateway", e.Headers["X-Path"])
	}
	if passed, returned := rg.passer.Counts(); passed != 1 || returned != 1 {
		t.Errorf("passed %d, returned %d; want 1 and 1", passed, returned)
	}
}

func TestLeaseEndsAtTheFirstIdleMoment(t *testing.T) {
	rg := newRig(t, 50*time.Millisecond)
	c := rg.dial(t)
	if e := c.get("a.test"); e.Headers["X-Path"] != "qp" {
		t.Fatalf("request went by %q, want the queue-proxy", e.Headers["X-Path"])
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, returned := rg.passer.Counts(); returned == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, returned := rg.passer.Counts(); returned != 1 {
		t.Fatal("the idle connection did not come back after its lease")
	}
	// Back after a lease, the connection's next request is routed by the gateway, and the
	// connection passed again after it.
	if e := c.get("a.test"); e.Headers["X-Path"] != "gw" {
		t.Errorf("first request after the lease went by %q, want the gateway", e.Headers["X-Path"])
	}
	if e := c.get("a.test"); e.Headers["X-Path"] != "qp" {
		t.Errorf("second request after the lease went by %q, want the queue-proxy again", e.Headers["X-Path"])
	}
	if passed, _ := rg.passer.Counts(); passed != 2 {
		t.Errorf("passed %d times, want 2", passed)
	}
}

func TestShutdownGivesIdleConnectionsBack(t *testing.T) {
	rg := newRig(t, time.Minute)
	c := rg.dial(t)
	c.get("a.test")
	c.get("a.test")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rg.qp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, returned := rg.passer.Counts(); returned != 1 {
		t.Fatalf("returned %d after the queue-proxy's shutdown, want 1", returned)
	}
	// The gateway serves its next request, then passes it again: the shut down
	// queue-proxy sends it back at once, with the request, and the gateway serves that one too.
	for i := range 3 {
		if e := c.get("a.test"); e.Headers["X-Path"] != "gw" {
			t.Errorf("after the shutdown request %d went by %q, want the gateway", i+1, e.Headers["X-Path"])
		}
	}
}

func TestClientCloseEndsThePass(t *testing.T) {
	rg := newRig(t, time.Minute)
	c := rg.dial(t)
	c.get("a.test")
	c.get("a.test")
	link := rg.passer.link("pod")
	_ = c.nc.Close()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		link.mu.Lock()
		n := len(link.conns)
		link.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Error("the gateway still counts the connection as passed after its client closed it")
}

// TestOnlyPassedSocketsComeBack plays a queue-proxy that gives the gateway back what it was
// never passed: another TCP connection, and a pipe. The gateway serves neither.
func TestOnlyPassedSocketsComeBack(t *testing.T) {
	ends := linkEnds(t)
	served := make(chan struct{}, 1)
	gw := &h1proxy.Server{Handler: routeFunc(func(*h1proxy.Request, *h1proxy.Forward) bool {
		served <- struct{}{}
		return false
	}), Fallback: &http.Server{Handler: http.NotFoundHandler()}}
	t.Cleanup(func() { _ = gw.Close() })
	var once sync.Once
	p := &Passer{Dial: func(context.Context, string) (*net.UnixConn, error) {
		var c *net.UnixConn
		once.Do(func() { c = ends[0] })
		if c == nil {
			return nil, fmt.Errorf("one link only")
		}
		return c, nil
	}}
	link := p.link("pod")
	if link == nil {
		t.Fatal("no link")
	}
	if !link.register(1, Back{Server: gw}) {
		t.Fatal("register")
	}

	// A TCP connection it was not passed, claimed with its true cookie and with the cookie of
	// one it was.
	other, _ := tcpPair(t)
	cookie, err := Cookie(other.(*net.TCPConn))
	if err != nil {
		t.Fatal(err)
	}
	for _, claimed := range []uint64{cookie, 1} {
		if err := send(ends[1], encodeReturn(claimed, true, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")), other.(*net.TCPConn)); err != nil {
			t.Fatal(err)
		}
	}
	// A pipe.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	if _, _, err := ends[1].WriteMsgUnix(encodeReturn(1, true, nil), unix.UnixRights(int(pr.Fd())), nil); err != nil {
		t.Fatal(err)
	}
	// Then one it was passed, to know the others were read first.
	if err := send(ends[1], encodeClosed(1), other.(*net.TCPConn)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, ok := link.take(1); !ok {
			break
		}
		_ = link.register(1, Back{Server: gw})
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-served:
		t.Error("the gateway served a connection it had not passed")
	case <-time.After(200 * time.Millisecond):
	}
	if _, returned := p.Counts(); returned != 0 {
		t.Errorf("returned %d, want 0", returned)
	}
}

// TestAReturnedConnectionItsClientResetIsClosed: a connection whose client reset it while a
// queue-proxy gave it back arrives with no peer address; the gateway closes it instead of
// serving it (it used to take the whole server down).
func TestAReturnedConnectionItsClientResetIsClosed(t *testing.T) {
	ends := linkEnds(t)
	gw := &h1proxy.Server{Handler: routeFunc(func(*h1proxy.Request, *h1proxy.Forward) bool { return false }),
		Fallback: &http.Server{Handler: http.NotFoundHandler()}}
	t.Cleanup(func() { _ = gw.Close() })
	p := &Passer{Dial: func(context.Context, string) (*net.UnixConn, error) { return ends[0], nil }}
	link := p.link("pod")
	if link == nil {
		t.Fatal("no link")
	}

	// The gateway's side of a client connection, whose client then resets it.
	conn, clientSide := tcpPair(t)
	cookie, err := Cookie(conn.(*net.TCPConn))
	if err != nil {
		t.Fatal(err)
	}
	if !link.register(cookie, Back{Server: gw}) {
		t.Fatal("register")
	}
	_ = clientSide.(*net.TCPConn).SetLinger(0)
	_ = clientSide.Close()
	rc, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		var perr error
		_ = rc.Control(func(fd uintptr) { _, perr = unix.Getpeername(int(fd)) })
		if perr != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reset did not arrive")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := send(ends[1], encodeReturn(cookie, true, []byte("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")), conn.(*net.TCPConn)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, returned := p.Counts(); returned == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the return was not taken")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The count comes just before the gateway's Server takes the connection, which used to
	// panic on it: give it the time to.
	time.Sleep(50 * time.Millisecond)
}

// linkEnds is a link's two ends (a SOCK_SEQPACKET socket pair), closed at the test's end.
func linkEnds(t *testing.T) []*net.UnixConn {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ends := make([]*net.UnixConn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "link")
		c, err := net.FileConn(f)
		_ = f.Close()
		if err != nil {
			t.Fatal(err)
		}
		ends[i] = c.(*net.UnixConn)
		t.Cleanup(func() { _ = c.Close() })
	}
	return ends
}

// tcpPair is a connected pair on loopback TCP, closed at the test's end.
func tcpPair(t *testing.T) (dialed, accepted net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if dialed, err = net.Dial("tcp", ln.Addr().String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dialed.Close() })
	if accepted, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = accepted.Close() })
	return dialed, accepted
}
