package kubeproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Bounds of the relay.
const (
	// maxRelayConns bounds kube-proxy's connections to the API server (it keeps one or two:
	// HTTP/2 carries its watches on one).
	maxRelayConns    = 16
	relayDialTimeout = 10 * time.Second
)

// relay is kube-proxy's way to the API server: a TCP relay on loopback, passing the TLS
// bytes through. kube-proxy cannot be stopped, and its watches would hold the API server,
// which stops after it, until its shutdown timeout; closing the relay ends them, and
// kube-proxy's retries then find the door shut.
type relay struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

// newRelay listens on a free loopback port for connections to target (host:port).
func newRelay(target string) (*relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &relay{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go r.serve()
	return r, nil
}

// Addr is where the relay listens.
func (r *relay) Addr() string { return r.ln.Addr().String() }

func (r *relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(100 * time.Millisecond) // a transient failure (out of descriptors)
			continue
		}
		go r.pipe(c)
	}
}

func (r *relay) pipe(c net.Conn) {
	if !r.track(c) {
		_ = c.Close()
		return
	}
	defer r.untrack(c)
	up, err := net.DialTimeout("tcp", r.target, relayDialTimeout)
	if err != nil {
		return
	}
	if !r.track(up) {
		_ = up.Close()
		return
	}
	defer r.untrack(up)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done // one way ended: end both
}

// track registers conn; false when the relay is closed or full.
func (r *relay) track(conn net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || len(r.conns) >= 2*maxRelayConns {
		return false
	}
	r.conns[conn] = struct{}{}
	return true
}

func (r *relay) untrack(conn net.Conn) {
	r.mu.Lock()
	delete(r.conns, conn)
	r.mu.Unlock()
	_ = conn.Close()
}

// Close stops accepting and ends every relayed connection.
func (r *relay) Close() {
	r.mu.Lock()
	r.closed = true
	conns := r.conns
	r.conns = map[net.Conn]struct{}{}
	r.mu.Unlock()
	_ = r.ln.Close()
	for c := range conns {
		_ = c.Close()
	}
}
