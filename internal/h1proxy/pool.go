package h1proxy

import (
	"bufio"
	"context"
	"net"
	"sync"
	"time"
)

// upstream is one kept-alive connection to an upstream server.
type upstream struct {
	nc   net.Conn
	br   *bufio.Reader
	addr string
	used time.Time
}

// pool keeps idle upstream connections per address: at most maxIdle each, none older than
// idleTimeout (a sweep closes them, so the connections of an address nobody asks for again
// do not linger).
type pool struct {
	maxIdle     int
	idleTimeout time.Duration
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)

	mu       sync.Mutex
	idle     map[string][]*upstream
	sweeping bool
	closed   bool
}

const dialTimeout = 5 * time.Second

// get takes the most recently used idle connection to addr, or dials one; reused says which.
func (p *pool) get(addr string) (u *upstream, reused bool, err error) {
	now := time.Now()
	p.mu.Lock()
	for conns := p.idle[addr]; len(conns) > 0; conns = p.idle[addr] {
		u := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		p.idle[addr] = conns[:len(conns)-1]
		if now.Sub(u.used) < p.idleTimeout && u.br.Buffered() == 0 {
			p.mu.Unlock()
			return u, true, nil
		}
		_ = u.nc.Close()
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	nc, err := p.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return &upstream{nc: nc, br: bufio.NewReaderSize(nc, bufferSize), addr: addr}, false, nil
}

// put keeps u idle, or closes it when its address has enough.
func (p *pool) put(u *upstream) {
	u.used = time.Now()
	_ = u.nc.SetDeadline(time.Time{})
	p.mu.Lock()
	if p.closed || len(p.idle[u.addr]) >= p.maxIdle {
		p.mu.Unlock()
		_ = u.nc.Close()
		return
	}
	if p.idle == nil {
		p.idle = map[string][]*upstream{}
	}
	p.idle[u.addr] = append(p.idle[u.addr], u)
	if !p.sweeping {
		p.sweeping = true
		time.AfterFunc(p.idleTimeout, p.sweep)
	}
	p.mu.Unlock()
}

// sweep closes the connections idle for longer than the timeout, and comes back while any
// connection is idle.
func (p *pool) sweep() {
	now := time.Now()
	var stale []*upstream
	p.mu.Lock()
	for addr, conns := range p.idle {
		keep := conns[:0]
		for _, u := range conns {
			if now.Sub(u.used) >= p.idleTimeout {
				stale = append(stale, u)
			} else {
				keep = append(keep, u)
			}
		}
		clear(conns[len(keep):])
		if len(keep) == 0 {
			delete(p.idle, addr)
		} else {
			p.idle[addr] = keep
		}
	}
	p.sweeping = len(p.idle) > 0 && !p.closed
	if p.sweeping {
		time.AfterFunc(p.idleTimeout/2, p.sweep)
	}
	p.mu.Unlock()
	for _, u := range stale {
		_ = u.nc.Close()
	}
}

// close closes every idle connection and keeps none from now on.
func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, conns := range idle {
		for _, u := range conns {
			_ = u.nc.Close()
		}
	}
}
