package main

// HTTP relays in the queue-proxy's place. The copying relays (relay.go) bound what one relay
// costs before it does any HTTP work; these two do the queue-proxy's per-request work for
// hello's requests, in two ways:
//
//   - h1proxy-http: internal/h1proxy (the queue-proxy's fast path, a goroutine per connection
//     on Go's network poller) with a Handler that does what the queue-proxy's does for a
//     plain request: the forwarded fields, the time and the counts of each request.
//   - epoll-http: the same work from one epoll loop on a locked thread, with the least code
//     that does it: a readable client is read, a whole request head is rewritten and written
//     to the connection's own upstream connection, and a whole answer (hello's fit in one
//     read) is written back. What it saves against h1proxy-http comes from the engine and
//     from that leaner code together (docs/benchmarks.md, "Two engines doing the same work").
//
// Neither is a proxy: they serve what wrk sends to hello (a GET without a body, an answer with
// a Content-Length) and close a connection on anything else.

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gantry-run/gantry/internal/h1proxy"
)

const (
	relayH1HTTP   = "h1proxy-http"
	relayLoopHTTP = "epoll-http"
)

// requestStats is what the queue-proxy keeps per request for the autoscaler and its
// metrics, reduced to the same kind of work: the requests in flight, a count, a sum of time.
type requestStats struct {
	inflight, total, nanos atomic.Int64
}

func (s *requestStats) in() time.Time {
	s.inflight.Add(1)
	return time.Now()
}

func (s *requestStats) out(began time.Time) {
	s.total.Add(1)
	s.nanos.Add(int64(time.Since(began)))
	s.inflight.Add(-1)
}

// h1HTTPRelay serves ln with internal/h1proxy, every request to upstream over TCP.
func h1HTTPRelay(ln net.Listener, upstream string) error {
	s := &h1proxy.Server{
		Handler:           &forwarding{upstream: upstream},
		Fallback:          &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 10 * time.Second},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       90 * time.Second,
	}
	return s.Serve(ln)
}

// forwarding is the h1proxy Handler of h1HTTPRelay.
type forwarding struct {
	upstream string
	stats    requestStats
}

func (h *forwarding) Route(r *h1proxy.Request, f *h1proxy.Forward) bool {
	began := h.stats.in()
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	f.Addr = h.upstream
	f.Set("Forwarded", "for="+host+";host="+r.Host+";proto=http")
	f.Set("X-Forwarded-For", host)
	f.ErrorBody = "relay: "
	f.Done = func(int) { h.stats.out(began) }
	return true
}

// loopConn is a client connection of loopHTTPRelay and its own upstream connection.
type loopConn struct {
	client, up int
	remote     string
	// in holds what was read of the client and not sent on, out what was read of the
	// upstream and not sent back; head is the head being written.
	in, out, head []byte
	began         time.Time
}

// loopHTTPRelay serves ln from one level-triggered epoll loop on a locked thread (epollLoop).
func loopHTTPRelay(ln net.Listener, upstream string) error {
	e, err := newEpollLoop(ln)
	if err != nil {
		return err
	}
	conns := map[int]*loopConn{}
	drop := func(c *loopConn) {
		_ = syscall.Close(c.client)
		_ = syscall.Close(c.up)
		delete(conns, c.client)
		delete(conns, c.up)
	}
	var stats requestStats
	accept := func() {
		c, err := acceptPair(e.lfd, upstream)
		if err != nil {
			return
		}
		conns[c.client], conns[c.up] = c, c
		if e.watch(c.client) != nil || e.watch(c.up) != nil {
			drop(c)
		}
	}
	return e.run(accept, func(fd int) {
		c := conns[fd]
		if c == nil {
			return
		}
		ok := false
		if fd == c.client {
			ok = c.request(&stats)
		} else {
			ok = c.answer(&stats)
		}
		if !ok {
			drop(c)
		}
	})
}

// acceptPair accepts a client on the listening socket lfd and connects it an upstream
// connection of its own.
func acceptPair(lfd int, upstream string) (*loopConn, error) {
	client, sa, err := syscall.Accept4(lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
	if err != nil {
		return nil, err
	}
	uc, err := net.Dial("tcp", upstream)
	if err != nil {
		_ = syscall.Close(client)
		return nil, err
	}
	up, err := detach(uc.(*net.TCPConn))
	if err != nil {
		_ = syscall.Close(client)
		return nil, err
	}
	_ = syscall.SetsockoptInt(client, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	remote := ""
	if a, ok := sa.(*syscall.SockaddrInet4); ok {
		remote = net.IP(a.Addr[:]).String()
	}
	return &loopConn{client: client, up: up, remote: remote, in: make([]byte, 0, 8<<10), out: make([]byte, 0, 16<<10)}, nil
}

var headEnd = []byte("\r\n\r\n")

// request reads the client and sends a whole request head on; false ends the connection.
func (c *loopConn) request(stats *requestStats) bool {
	var ok bool
	if c.in, ok = readMore(c.client, c.in); !ok {
		return false
	}
	end := bytes.Index(c.in, headEnd)
	if end < 0 {
		return len(c.in) < cap(c.in)
	}
	c.began = stats.in()
	c.head = forwardedHead(c.head[:0], c.in[:end+2], c.remote)
	if !writeAll(c.up, c.head) {
		return false
	}
	c.in = c.in[:copy(c.in, c.in[end+len(headEnd):])]
	return true
}

// answer reads the upstream and sends a whole answer back; false ends the connection.
func (c *loopConn) answer(stats *requestStats) bool {
	var ok bool
	if c.out, ok = readMore(c.up, c.out); !ok {
		return false
	}
	end := bytes.Index(c.out, headEnd)
	if end < 0 {
		return len(c.out) < cap(c.out)
	}
	length, ok := contentLength(c.out[:end+2])
	whole := end + len(headEnd) + length
	if !ok || whole > cap(c.out) {
		return false
	}
	if len(c.out) < whole {
		return true
	}
	c.head = appendFields(c.head[:0], c.out[:end+2])
	c.head = append(append(c.head, "\r\n"...), c.out[end+len(headEnd):whole]...)
	if !writeAll(c.client, c.head) {
		return false
	}
	c.out = c.out[:copy(c.out, c.out[whole:])]
	stats.out(c.began)
	return true
}

// readMore reads fd into b's spare capacity; false when the connection ended or failed.
func readMore(fd int, b []byte) ([]byte, bool) {
	n, err := syscall.Read(fd, b[len(b):cap(b)])
	if errors.Is(err, syscall.EAGAIN) {
		return b, true
	}
	if n <= 0 {
		return b, false
	}
	return b[:len(b)+n], true
}

// writeAll writes b to the non-blocking fd. hello's requests and answers never fill a
// socket's buffer, so a write that would block is tried again at once.
func writeAll(fd int, b []byte) bool {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if errors.Is(err, syscall.EAGAIN) {
			continue
		}
		if err != nil {
			return false
		}
		b = b[n:]
	}
	return true
}

// hopFields are the fields a relay does not pass on (those of its connection), with the
// forwarded ones it writes itself.
var hopFields = []string{"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
	"forwarded", "x-forwarded-for"}

// appendFields appends head (a start line and fields, each ending in CRLF) without the
// fields hopFields names.
func appendFields(b, head []byte) []byte {
	line := bytes.IndexByte(head, '\n')
	b = append(b, head[:line+1]...)
	for rest := head[line+1:]; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		field := rest[:i+1]
		rest = rest[i+1:]
		if name, _, ok := bytes.Cut(field, []byte(":")); !ok || !isHopField(name) {
			b = append(b, field...)
		}
	}
	return b
}

func isHopField(name []byte) bool {
	for _, h := range hopFields {
		if bytes.EqualFold(name, []byte(h)) {
			return true
		}
	}
	return false
}

// forwardedHead is the request head as the queue-proxy sends it on: the client's, with the
// forwarded fields for the client at remote.
func forwardedHead(b, head []byte, remote string) []byte {
	b = appendFields(b, head)
	host := field(head, "host")
	b = append(b, "Forwarded: for="...)
	b = append(b, remote...)
	b = append(b, ";host="...)
	b = append(b, host...)
	b = append(b, ";proto=http\r\nX-Forwarded-For: "...)
	b = append(b, remote...)
	return append(b, "\r\n\r\n"...)
}

// field is the value of head's first field name.
func field(head []byte, name string) []byte {
	for rest := head[bytes.IndexByte(head, '\n')+1:]; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		line := rest[:i+1]
		rest = rest[i+1:]
		if n, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(n, []byte(name)) {
			return bytes.TrimSpace(v)
		}
	}
	return nil
}

// contentLength is an answer head's body length; false when it has none.
func contentLength(head []byte) (int, bool) {
	n, err := strconv.Atoi(string(field(head, "content-length")))
	return n, err == nil && n >= 0
}
