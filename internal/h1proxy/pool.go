package h1proxy

import (
	"bufio"
	"context"
	"net"
	"time"

	"github.com/gantry-run/gantry/internal/connpool"
)

// upstream is one kept-alive connection to an upstream server.
type upstream struct {
	nc   net.Conn
	io   *connIO
	br   *bufio.Reader
	addr string
}

func (u *upstream) Close() error { return u.nc.Close() }

// pool keeps idle upstream connections per address (internal/connpool) and dials new ones.
type pool struct {
	idle *connpool.Pool[*upstream]
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

const dialTimeout = 5 * time.Second

// get takes the most recently used idle connection to addr, or dials one; reused says which.
func (p *pool) get(addr string) (u *upstream, reused bool, err error) {
	// A kept connection with unread bytes holds an answer nobody asked for: not reused.
	if u, ok := p.idle.Get(addr, func(u *upstream) bool { return u.br.Buffered() == 0 }); ok {
		return u, true, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	nc, err := p.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	u = &upstream{nc: nc, io: newConnIO(nc), addr: addr}
	u.br = bufio.NewReaderSize(u.io, bufferSize)
	return u, false, nil
}

// put keeps u idle, or closes it when its address has enough. Its read deadline stays: nothing
// reads an idle connection, and its next exchange sets its own.
func (p *pool) put(u *upstream) {
	u.io.boundWrites(time.Time{})
	p.idle.Put(u.addr, u)
}

// close closes every idle connection and keeps none from now on.
func (p *pool) close() { p.idle.Close() }
