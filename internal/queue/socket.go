package queue

import (
	"fmt"
	"net"
	"os"

	"github.com/gantry-run/gantry/internal/procroute"
)

// listenSocket listens on the unix socket at path (contract.EnvSocket), replacing what an
// earlier run of the queue-proxy left there. Only this user (and root, the node) may connect.
// Connections accepted there give the pod's default gateway as their remote address: the host
// connects through the socket where it would otherwise have come from that address, and the
// X-Forwarded-For the app sees stays the same.
func listenSocket(path string) (net.Listener, error) {
	return listenSocketRoutes(path, procroute.File)
}

// listenSocketRoutes is listenSocket with the default gateway read from routes.
func listenSocketRoutes(path, routes string) (net.Listener, error) {
	l, err := listenUnix("unix", path)
	if err != nil {
		return nil, err
	}
	gw, err := procroute.DefaultGateway(routes)
	if err != nil || gw == nil {
		return l, nil // the peer stays the socket's (no X-Forwarded-For hop is added)
	}
	return &peerListener{Listener: l, peer: &net.TCPAddr{IP: gw}}, nil
}

// peerListener gives its connections peer as their remote address.
type peerListener struct {
	net.Listener
	peer net.Addr
}

func (l *peerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &peerConn{Conn: c, peer: l.peer}, nil
}

type peerConn struct {
	net.Conn
	peer net.Addr
}

func (c *peerConn) RemoteAddr() net.Addr { return c.peer }

// listenPass listens for the gateway's links that pass client connections (internal/connpass).
func listenPass(path string) (net.Listener, error) { return listenUnix("unixpacket", path) }

// listenUnix listens on a unix socket at path (replacing one left there), for its owner only.
func listenUnix(network, path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("queue-proxy: socket %s: %w", path, err)
	}
	l, err := net.Listen(network, path)
	if err != nil {
		return nil, fmt.Errorf("queue-proxy: socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("queue-proxy: socket %s: %w", path, err)
	}
	return l, nil
}

// socketPeer is the remote address the serving socket's connections have.
func socketPeer(ln net.Listener) string {
	if pl, ok := ln.(*peerListener); ok {
		return pl.peer.String()
	}
	return "" // an unnamed unix peer's, which adds no X-Forwarded-For hop
}
