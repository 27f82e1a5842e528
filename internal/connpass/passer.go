package connpass

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gantry-run/gantry/internal/h1proxy"
)

// Passer is the gateway's side: it passes connections to the queue-proxies of this machine's
// pods, one link per pod, and serves the connections they give back.
type Passer struct {
	// Dial opens a link to the queue-proxy of the pod whose serving port is addr (ip:port),
	// and fails for a pod that may not take connections.
	Dial func(ctx context.Context, addr string) (*net.UnixConn, error)
	Log  *slog.Logger

	passed, returned atomic.Int64

	mu     sync.Mutex
	links  map[string]*passerLink
	failed map[string]time.Time
}

// Counts are how many connections a Passer passed, and how many came back.
func (p *Passer) Counts() (passed, returned int64) { return p.passed.Load(), p.returned.Load() }

// Back is where a passed connection goes when it comes back, and what its requests count to.
type Back struct {
	// Server serves the connection again (the gateway's listener it came on).
	Server *h1proxy.Server
	// Served counts each request the queue-proxy served on it; nil counts none.
	Served func(status int, d time.Duration)
}

// Bounds of a Passer.
const (
	// dialTimeout bounds opening a link.
	dialTimeout = time.Second
	// retryAfter is how long a pod whose link could not be opened is not tried again.
	retryAfter = 5 * time.Second
	// maxPassed bounds the connections passed on one link and not back yet.
	maxPassed = 8192
)

// Pass passes nc, whose request went to the pod at addr, to that pod's queue-proxy: it serves
// the requests for host that follow, as the gateway would have sent them (set: the fields the
// route sets), after buffered (what was read of nc and not served, the request first). client
// is the client's address. It reports whether the queue-proxy took nc; the caller then
// closes its own descriptor.
func (p *Passer) Pass(addr string, nc net.Conn, host, client string, set [][2]string, buffered []byte, back Back) bool {
	sc, ok := nc.(syscallConn)
	if !ok {
		return false
	}
	msg, err := (&pass{host: host, client: client, set: set, buffered: buffered}).encode()
	if err != nil {
		return false
	}
	cookie, err := Cookie(sc)
	if err != nil {
		return false
	}
	l := p.link(addr)
	if l == nil || !l.register(cookie, back) {
		return false
	}
	// Counted before it goes: the queue-proxy may serve the connection's requests, and its
	// client see them answered, before this goroutine runs again.
	p.passed.Add(1)
	if err := send(l.uc, msg, sc); err != nil {
		p.passed.Add(-1)
		l.take(cookie)
		p.Log.Debug("connpass: passing a connection", "pod", addr, "err", err)
		l.close()
		return false
	}
	return true
}

// link returns the open link to addr, opening one if there is none; nil when it cannot.
func (p *Passer) link(addr string) *passerLink {
	p.mu.Lock()
	if p.links == nil {
		p.links, p.failed = map[string]*passerLink{}, map[string]time.Time{}
		if p.Log == nil {
			p.Log = slog.New(slog.DiscardHandler)
		}
	}
	if l := p.links[addr]; l != nil {
		p.mu.Unlock()
		return l
	}
	if t, ok := p.failed[addr]; ok && time.Since(t) < retryAfter {
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	uc, err := p.Dial(ctx, addr)
	cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		// Pods elsewhere never take a link: keep only recent failures, so the map stays as
		// small as the pods tried in the last retryAfter.
		for a, t := range p.failed {
			if time.Since(t) >= retryAfter {
				delete(p.failed, a)
			}
		}
		p.failed[addr] = time.Now()
		p.Log.Debug("connpass: no link to the pod", "pod", addr, "err", err)
		return nil
	}
	delete(p.failed, addr)
	if l := p.links[addr]; l != nil {
		_ = uc.Close() // another request opened one meanwhile
		return l
	}
	l := &passerLink{p: p, addr: addr, uc: uc, conns: map[uint64]Back{}}
	p.links[addr] = l
	go l.read()
	return l
}

// passerLink is the link to one pod's queue-proxy.
type passerLink struct {
	p    *Passer
	addr string
	uc   *net.UnixConn

	mu     sync.Mutex
	conns  map[uint64]Back // passed and not back yet, by cookie
	served func(status int, d time.Duration)
	closed bool
}

func (l *passerLink) register(cookie uint64, back Back) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || len(l.conns) >= maxPassed {
		return false
	}
	l.conns[cookie] = back
	if back.Served != nil {
		l.served = back.Served
	}
	return true
}

func (l *passerLink) take(cookie uint64) (Back, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.conns[cookie]
	delete(l.conns, cookie)
	return b, ok
}

// close ends the link. The connections passed on it stay with the queue-proxy, which closes
// them when it cannot give them back.
func (l *passerLink) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	_ = l.uc.Close()
	l.p.mu.Lock()
	if l.p.links[l.addr] == l {
		delete(l.p.links, l.addr)
	}
	l.p.mu.Unlock()
}

// read serves what the queue-proxy sends until the link ends.
func (l *passerLink) read() {
	defer l.close()
	buf := make([]byte, maxMessage)
	for {
		msg, nc, cookie, err := receive(l.uc, buf)
		if errors.Is(err, errBadDescriptor) {
			l.p.Log.Warn("connpass: dropped a message from a queue-proxy", "pod", l.addr, "err", err)
			continue
		}
		if err != nil {
			return
		}
		if len(msg) > 0 && msg[0] == kindReturn {
			l.returned(msg, nc, cookie)
			continue
		}
		if nc != nil {
			_ = nc.Close() // only a return carries a connection
		}
		switch {
		case len(msg) == 9 && msg[0] == kindClosed:
			l.take(binary.BigEndian.Uint64(msg[1:]))
		case len(msg) > 0 && msg[0] == kindServed:
			l.countServed(msg[1:])
		}
	}
}

// returned serves a connection the queue-proxy gave back: only one this link passed, by its
// cookie, so a pod can give the gateway back nothing but its own client connections.
func (l *passerLink) returned(msg []byte, nc net.Conn, cookie uint64) {
	claimed, again, buffered, err := decodeReturn(msg)
	if err != nil || nc == nil || claimed != cookie {
		if nc != nil {
			_ = nc.Close()
		}
		l.p.Log.Warn("connpass: dropped a malformed return from a queue-proxy", "pod", l.addr)
		return
	}
	back, ok := l.take(cookie)
	if !ok || back.Server == nil {
		_ = nc.Close()
		l.p.Log.Warn("connpass: a queue-proxy gave back a connection it was not passed", "pod", l.addr)
		return
	}
	l.p.returned.Add(1)
	back.Server.ServeConn(&Returned{Conn: nc}, buffered, again)
}

func (l *passerLink) countServed(b []byte) {
	l.mu.Lock()
	served := l.served
	l.mu.Unlock()
	if served == nil {
		return
	}
	for ; len(b) >= servedRecord; b = b[servedRecord:] {
		status := int(binary.BigEndian.Uint16(b))
		us := binary.BigEndian.Uint32(b[2:])
		if status < 100 || status > 599 {
			continue
		}
		served(status, time.Duration(us)*time.Microsecond)
	}
}

// Returned is a connection a queue-proxy gave back. What is read of it first came through
// the pod, so the gateway serves it only what the pod's side may reach (IsReturned).
type Returned struct {
	net.Conn
}

// SyscallConn reaches the socket, to pass the connection again.
func (r *Returned) SyscallConn() (syscall.RawConn, error) {
	sc, ok := r.Conn.(syscallConn)
	if !ok {
		return nil, errors.New("connpass: not a socket")
	}
	return sc.SyscallConn()
}

// IsReturned reports whether c (or the connection it wraps, by NetConn) came back from a
// queue-proxy.
func IsReturned(c net.Conn) bool {
	for range 4 {
		if _, ok := c.(*Returned); ok {
			return true
		}
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return false
		}
		c = w.NetConn()
	}
	return false
}
