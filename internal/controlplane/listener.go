package controlplane

import (
	"net"
	"sync"
)

// closingListener is the API server's listener. When the server closes it, which it does
// only once its in-flight requests have drained (--shutdown-send-retry-after), the listener
// also closes every connection it accepted.
//
// Without this, stopping the API server takes a second for nothing: net/http's Shutdown
// waits for every HTTP/2 connection to end, and a Go HTTP/2 client that receives GOAWAY on
// an idle connection does not close it, so the server waits for its one-second GOAWAY timer
// per connection. Every client in this process is stopped by then, and what is still open
// is idle or a watch, which the server would end anyway.
type closingListener struct {
	net.Listener

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func newClosingListener(l net.Listener) *closingListener {
	return &closingListener{Listener: l, conns: make(map[net.Conn]struct{})}
}

func (l *closingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	tc := &trackedConn{Conn: c, l: l}
	l.conns[tc] = struct{}{}
	return tc, nil
}

// Close closes the listener and every connection still open.
func (l *closingListener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = map[net.Conn]struct{}{}
	l.mu.Unlock()
	for c := range conns {
		_ = c.(*trackedConn).Conn.Close()
	}
	return err
}

func (l *closingListener) forget(c *trackedConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// trackedConn leaves its listener's set when it is closed.
type trackedConn struct {
	net.Conn
	l    *closingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.l.forget(c) })
	return c.Conn.Close()
}
