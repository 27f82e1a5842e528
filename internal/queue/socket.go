package queue

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
)

// listenSocket listens on the unix socket at path (contract.EnvSocket), replacing what an
// earlier run of the queue-proxy left there. Only this user (and root, the node) may connect.
// Connections accepted there give the pod's default gateway as their remote address: the host
// connects through the socket where it would otherwise have come from that address, and the
// X-Forwarded-For the app sees stays the same.
func listenSocket(path string) (net.Listener, error) {
	return listenSocketRoutes(path, "/proc/net/route")
}

// listenSocketRoutes is listenSocket with the default gateway read from routes.
func listenSocketRoutes(path, routes string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("queue-proxy: socket %s: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("queue-proxy: socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("queue-proxy: socket %s: %w", path, err)
	}
	gw, err := defaultGateway(routes)
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

// defaultGateway is the IPv4 gateway of the default route in the routing table file (the
// format of /proc/net/route: addresses in hex, in the machine's byte order), nil when
// there is none.
func defaultGateway(file string) (net.IP, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || fields[1] != "00000000" {
			continue
		}
		b, err := hex.DecodeString(fields[2])
		if err != nil || len(b) != 4 {
			return nil, fmt.Errorf("%s: gateway %q", file, fields[2])
		}
		ip := make(net.IP, 4)
		binary.NativeEndian.PutUint32(ip, binary.BigEndian.Uint32(b))
		if ip.IsUnspecified() {
			continue
		}
		return ip, nil
	}
	return nil, sc.Err()
}
