// Package h1transport is the HTTP/1.1 client of Gantry's proxies (the queue-proxy towards the
// user container, the activator towards the queue-proxies). net/http's Transport gives every
// connection a reading and a writing goroutine, so each proxied request hands over between
// three goroutines; on two cores that hand-over costs more than the proxying itself. This
// Transport writes the request and reads the response in the caller's goroutine, on
// connections it keeps alive per address. It sends only what it may send again when a kept
// connection turns out closed by the server (which net/http's reading goroutine would have
// noticed while it sat idle): requests without a body of the idempotent methods (GET, HEAD,
// OPTIONS, TRACE), as net/http retries. Everything else (bodies, upgrades, Expect, HTTP/2)
// goes to a fallback RoundTripper.
package h1transport

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gantry-run/gantry/internal/connpool"
)

// Transport sends simple HTTP/1.1 requests on kept-alive connections. The zero value is not
// usable: set Fallback.
type Transport struct {
	// Fallback takes the requests this Transport does not send itself.
	Fallback http.RoundTripper
	// DialContext dials a new connection; nil uses a net.Dialer with a 5 s timeout.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxIdlePerHost bounds the idle connections kept per address (default 100).
	MaxIdlePerHost int
	// IdleTimeout closes a connection idle this long instead of using it (default 90 s).
	IdleTimeout time.Duration

	once sync.Once
	idle *connpool.Pool[*conn]
}

// conn is one kept-alive connection.
type conn struct {
	nc   net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	read int64 // bytes read since the request began, counted by countingConn
}

func (c *conn) Close() error { return c.nc.Close() }

// countingConn counts what is read, so that a failure before the response's first byte can be
// told apart (only then may a request be sent again).
type countingConn struct {
	net.Conn
	c *conn
}

func (cc countingConn) Read(p []byte) (int, error) {
	n, err := cc.Conn.Read(p)
	cc.c.read += int64(n)
	return n, err
}

const (
	defaultMaxIdlePerHost = 100
	defaultIdleTimeout    = 90 * time.Second
	dialTimeout           = 5 * time.Second
)

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !inline(r) {
		return t.Fallback.RoundTrip(r)
	}
	ctx := r.Context()
	for attempt := 0; ; attempt++ {
		c, reused, err := t.get(ctx, r.URL.Host)
		if err != nil {
			closeBody(r)
			return nil, err
		}
		resp, err := t.send(ctx, c, r)
		if err == nil {
			return resp, nil
		}
		_ = c.nc.Close()
		// A kept-alive connection the server had closed fails before any byte of the answer:
		// send the request once more, on a new connection, as net/http does.
		if reused && attempt == 0 && c.read == 0 && ctx.Err() == nil {
			continue
		}
		closeBody(r)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
}

// inline tells whether the Transport sends r itself.
func inline(r *http.Request) bool {
	if r.URL.Scheme != "http" || r.ProtoMajor == 2 || !bodyless(r) {
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
	default:
		return false
	}
	if r.Header.Get("Upgrade") != "" || r.Header.Get("Expect") != "" {
		return false
	}
	for _, v := range r.Header["Connection"] {
		if strings.Contains(strings.ToLower(v), "upgrade") {
			return false
		}
	}
	return true
}

func bodyless(r *http.Request) bool { return r.Body == nil || r.Body == http.NoBody }

func closeBody(r *http.Request) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
}

// aLongTimeAgo is a deadline that makes a blocked read or write return at once.
var aLongTimeAgo = time.Unix(1, 0)

// send writes r on c and reads the answer's head. The connection goes back to the pool when
// the answer's body has been read to its end and closed.
func (t *Transport) send(ctx context.Context, c *conn, r *http.Request) (*http.Response, error) {
	c.read = 0
	// A request whose context ends (its client left, a timeout) stops waiting on the server.
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(aLongTimeAgo) })
	if err := r.Write(c.bw); err != nil {
		stop()
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		stop()
		return nil, err
	}
	for {
		resp, err := http.ReadResponse(c.br, r)
		if err != nil {
			stop()
			return nil, err
		}
		// Informational answers (100 Continue, 103 Early Hints) come before the real one.
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		b := &body{t: t, c: c, host: r.URL.Host, stop: stop,
			keep: !resp.Close && !r.Close && resp.StatusCode != http.StatusSwitchingProtocols}
		if resp.Body == http.NoBody {
			b.release(true)
			return resp, nil
		}
		b.rc = resp.Body
		resp.Body = b
		return resp, nil
	}
}

// body is an answer's body: read to its end and closed, its connection is kept.
type body struct {
	rc   io.ReadCloser
	t    *Transport
	c    *conn
	host string
	stop func() bool
	keep bool

	mu     sync.Mutex
	eof    bool
	closed bool
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if errors.Is(err, io.EOF) {
		b.mu.Lock()
		b.eof = true
		b.mu.Unlock()
	}
	return n, err
}

func (b *body) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	eof := b.eof
	b.mu.Unlock()
	err := b.rc.Close()
	b.release(eof)
	return err
}

// release returns the connection to the pool when the answer was read whole and nothing
// interrupted it, else closes it.
func (b *body) release(whole bool) {
	if b.stop() && whole && b.keep {
		b.t.put(b.host, b.c)
		return
	}
	_ = b.c.nc.Close()
}

// pool is the Transport's idle connections, made on first use.
func (t *Transport) pool() *connpool.Pool[*conn] {
	t.once.Do(func() {
		maxIdle, timeout := t.MaxIdlePerHost, t.IdleTimeout
		if maxIdle <= 0 {
			maxIdle = defaultMaxIdlePerHost
		}
		if timeout <= 0 {
			timeout = defaultIdleTimeout
		}
		t.idle = connpool.New[*conn](maxIdle, timeout)
	})
	return t.idle
}

// get takes an idle connection to addr, or dials one.
func (t *Transport) get(ctx context.Context, addr string) (*conn, bool, error) {
	if c, ok := t.pool().Get(addr, nil); ok {
		return c, true, nil
	}
	dial := t.DialContext
	if dial == nil {
		dial = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	c := &conn{nc: nc}
	c.br = bufio.NewReader(countingConn{Conn: nc, c: c})
	c.bw = bufio.NewWriter(nc)
	return c, false, nil
}

// put keeps c idle for addr, or closes it when addr has enough.
func (t *Transport) put(addr string, c *conn) {
	_ = c.nc.SetDeadline(time.Time{})
	t.pool().Put(addr, c)
}

// CloseIdleConnections closes the kept connections, this Transport's and the fallback's.
func (t *Transport) CloseIdleConnections() {
	t.pool().CloseIdle()
	if ci, ok := t.Fallback.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}
