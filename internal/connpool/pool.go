// Package connpool keeps idle connections per address for Gantry's HTTP/1.1 hops (the fast
// path of internal/h1proxy, the client of internal/h1transport): at most a set number per
// address, the most recently used first, none kept past an idle timeout. A sweep closes the
// stale ones, so the connections to an address nobody asks for again (a pod that is gone) do
// not stay open.
package connpool

import (
	"io"
	"sync"
	"time"
)

// Pool keeps idle connections of type C per address. Make one with New.
type Pool[C io.Closer] struct {
	maxIdle     int
	idleTimeout time.Duration
	now         func() time.Time

	mu       sync.Mutex
	idle     map[string][]entry[C]
	sweeping bool
	closed   bool
}

type entry[C io.Closer] struct {
	c    C
	used time.Time
}

// New returns a pool that keeps at most maxIdle connections per address, each for at most
// idleTimeout.
func New[C io.Closer](maxIdle int, idleTimeout time.Duration) *Pool[C] {
	return &Pool[C]{maxIdle: maxIdle, idleTimeout: idleTimeout, now: time.Now}
}

// Get takes the most recently used idle connection to addr that usable accepts (nil accepts
// all), closing the stale and the refused ones it passes; ok is false when none is left.
func (p *Pool[C]) Get(addr string, usable func(C) bool) (c C, ok bool) {
	now := p.now()
	var drop []C
	p.mu.Lock()
	if conns, found := p.idle[addr]; found {
		for len(conns) > 0 {
			e := conns[len(conns)-1]
			conns[len(conns)-1] = entry[C]{}
			conns = conns[:len(conns)-1]
			if now.Sub(e.used) < p.idleTimeout && (usable == nil || usable(e.c)) {
				c, ok = e.c, true
				break
			}
			drop = append(drop, e.c)
		}
		// An emptied list keeps its room for the Put that follows; the sweep drops it.
		p.idle[addr] = conns
	}
	p.mu.Unlock()
	for _, d := range drop {
		_ = d.Close()
	}
	return c, ok
}

// Put keeps c idle for addr, or closes it when addr has enough or the pool is closed.
func (p *Pool[C]) Put(addr string, c C) {
	now := p.now()
	p.mu.Lock()
	if p.closed || len(p.idle[addr]) >= p.maxIdle {
		p.mu.Unlock()
		_ = c.Close()
		return
	}
	if p.idle == nil {
		p.idle = map[string][]entry[C]{}
	}
	p.idle[addr] = append(p.idle[addr], entry[C]{c: c, used: now})
	if !p.sweeping {
		p.sweeping = true
		time.AfterFunc(p.idleTimeout, p.sweep)
	}
	p.mu.Unlock()
}

// sweep closes the connections idle for the timeout or longer, and comes back while any
// connection is kept.
func (p *Pool[C]) sweep() {
	stale := p.removeStale()
	for _, c := range stale {
		_ = c.Close()
	}
}

func (p *Pool[C]) removeStale() []C {
	now := p.now()
	var stale []C
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, conns := range p.idle {
		keep := conns[:0]
		for _, e := range conns {
			if now.Sub(e.used) >= p.idleTimeout {
				stale = append(stale, e.c)
			} else {
				keep = append(keep, e)
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
	return stale
}

// CloseIdle closes every idle connection; the pool keeps the ones Put gives it later.
func (p *Pool[C]) CloseIdle() { p.closeIdle(false) }

// Close closes every idle connection; from then on Put closes what it is given.
func (p *Pool[C]) Close() { p.closeIdle(true) }

func (p *Pool[C]) closeIdle(closed bool) {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closed = p.closed || closed
	p.mu.Unlock()
	for _, conns := range idle {
		for _, e := range conns {
			_ = e.c.Close()
		}
	}
}
