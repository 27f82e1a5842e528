package connpass

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gantry-run/gantry/internal/forwarded"
	"github.com/gantry-run/gantry/internal/h1proxy"
	"github.com/gantry-run/gantry/internal/queue/contract"
)

// Receiver is the queue-proxy's side: it takes the connections the gateway passes and serves
// them with the serving port's server.
type Receiver struct {
	// Server serves the passed connections (the serving port's fast path).
	Server *h1proxy.Server
	// Peer is the remote address the serving port's handler sees for them: the gateway's,
	// as for the requests the gateway sends through the serving socket.
	Peer string
	// MaxConns bounds the passed connections served at once (default 4096); past it, a
	// connection goes back at once.
	MaxConns int64
	// Lease is how long a connection is served before it goes back (default Lease).
	Lease time.Duration
	Log   *slog.Logger

	conns atomic.Int64
	mu    sync.Mutex
	links map[*net.UnixConn]struct{}
}

// servedFlush is how long a link holds the requests served before it sends them to the
// gateway, or until it holds maxServed: the gateway's metrics lag by at most that. Each
// message wakes both processes; at 10 ms that cost the path about 1 % of its CPU at full load.
const servedFlush = 100 * time.Millisecond

// maxServed bounds the requests held for one served message.
const maxServed = (maxMessage - 1) / servedRecord

// Serve accepts the gateway's links on ln until ln is closed, then closes them: the
// connections passed on them are still served, and closed when they would go back.
func (r *Receiver) Serve(ln net.Listener) error {
	if r.Log == nil {
		r.Log = slog.New(slog.DiscardHandler)
	}
	if r.MaxConns <= 0 {
		r.MaxConns = 4096
	}
	if r.Lease <= 0 {
		r.Lease = Lease
	}
	r.mu.Lock()
	r.links = map[*net.UnixConn]struct{}{}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		for uc := range r.links {
			_ = uc.Close()
		}
		r.mu.Unlock()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		uc, ok := c.(*net.UnixConn)
		if !ok {
			_ = c.Close()
			continue
		}
		r.mu.Lock()
		r.links[uc] = struct{}{}
		r.mu.Unlock()
		go r.serveLink(uc)
	}
}

// receiverLink is one link from the gateway.
type receiverLink struct {
	r  *Receiver
	uc *net.UnixConn

	mu     sync.Mutex
	served []byte
	closed bool
}

func (r *Receiver) serveLink(uc *net.UnixConn) {
	l := &receiverLink{r: r, uc: uc}
	defer func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		_ = uc.Close()
		r.mu.Lock()
		delete(r.links, uc)
		r.mu.Unlock()
	}()
	buf := make([]byte, maxMessage)
	for {
		msg, nc, cookie, err := receive(uc, buf)
		if errors.Is(err, errBadDescriptor) {
			r.Log.Warn("connpass: dropped a message from the gateway", "err", err)
			continue
		}
		if err != nil {
			return
		}
		p, err := decodePass(msg)
		if err != nil || nc == nil {
			if nc != nil {
				_ = nc.Close()
			}
			r.Log.Warn("connpass: dropped a malformed pass from the gateway")
			continue
		}
		l.serve(nc, cookie, p)
	}
}

// serve serves one passed connection, or gives it back at once when too many are served.
func (l *receiverLink) serve(nc net.Conn, cookie uint64, p *pass) {
	if l.r.conns.Add(1) > l.r.MaxConns {
		l.r.conns.Add(-1)
		l.giveBack(nc, cookie, true, p.buffered)
		_ = nc.Close()
		return
	}
	var once sync.Once
	end := func() { once.Do(func() { l.r.conns.Add(-1) }) }
	set := p.set
	// A client sends the same forwarding fields on each of its requests, mostly: the
	// connection's last ones and what they gave are kept, and worked out again when they change.
	var last struct {
		host, xff, fwd string
		xffIn, fwdIn   []string
	}
	l.r.Server.ServePassed(nc, p.buffered, &h1proxy.Passed{
		Host: p.host,
		Peer: l.r.Peer,
		Rewrite: func(req *h1proxy.Request, f *h1proxy.Forward) {
			// As the activator does for a request it does not hold: only it marks one proxied.
			f.Drop(contract.ProxyHeader)
			for _, kv := range set {
				f.Set(kv[0], kv[1])
			}
			xffIn, fwdIn := req.Values("X-Forwarded-For"), req.Values("Forwarded")
			if last.xff == "" || req.Host != last.host || !slices.Equal(xffIn, last.xffIn) || !slices.Equal(fwdIn, last.fwdIn) {
				last.xff, last.fwd = forwarded.Values(p.client, req.Host, xffIn, fwdIn)
				last.host, last.xffIn, last.fwdIn = req.Host, xffIn, fwdIn
			}
			f.Set("X-Forwarded-For", last.xff)
			f.Set("X-Forwarded-Proto", "http")
			f.Set("Forwarded", last.fwd)
			f.Set("K-Original-Host", req.Host)
		},
		Until: time.Now().Add(l.r.Lease),
		Return: func(nc net.Conn, buffered []byte, again bool) bool {
			end()
			return l.giveBack(nc, cookie, again, buffered)
		},
		Served: l.record,
		Closed: func() {
			end()
			_, _ = l.uc.Write(encodeClosed(cookie))
		},
	})
}

type syscallConn interface {
	net.Conn
	SyscallConn() (syscall.RawConn, error)
}

// giveBack sends nc back to the gateway; false when the link is gone.
func (l *receiverLink) giveBack(nc net.Conn, cookie uint64, again bool, buffered []byte) bool {
	sc, ok := nc.(syscallConn)
	if !ok {
		return false
	}
	return send(l.uc, encodeReturn(cookie, again, buffered), sc) == nil
}

// record holds a served request for the next served message, sent servedFlush after the
// first request it holds, or as soon as it holds maxServed.
func (l *receiverLink) record(status int, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if len(l.served) == 0 {
		time.AfterFunc(servedFlush, l.flushServed)
	}
	us := min(d.Microseconds(), 1<<32-1)
	l.served = binary.BigEndian.AppendUint16(l.served, uint16(status))
	l.served = binary.BigEndian.AppendUint32(l.served, uint32(us))
	if len(l.served) >= maxServed*servedRecord {
		msg := l.takeServed()
		go func() { _, _ = l.uc.Write(msg) }()
	}
}

// flushServed sends what record held.
func (l *receiverLink) flushServed() {
	l.mu.Lock()
	msg := l.takeServed()
	l.mu.Unlock()
	if msg != nil {
		_, _ = l.uc.Write(msg)
	}
}

// takeServed empties what record held into a served message; nil when it held nothing. l.mu
// is held.
func (l *receiverLink) takeServed() []byte {
	if len(l.served) == 0 {
		return nil
	}
	msg := append([]byte{kindServed}, l.served...)
	l.served = l.served[:0]
	return msg
}
