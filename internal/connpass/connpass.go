// Package connpass lets the gateway pass a client's connection to the queue-proxy of a pod on
// the same machine, which then serves the connection's requests itself for a lease, and
// gives it back. Each request through the gateway crosses two relays (the gateway, the
// queue-proxy) before the app; a passed connection crosses one, so a kept-alive client costs
// the machine about half as much per request.
//
// Nothing of the request path changes for the app or the client: the gateway routes a
// connection's first request as any other and passes the connection only when every request
// for its Host goes to one revision (one path, one split, no header matches), the revision
// has a ready pod and no per-pod limit (containerConcurrency 0: the activator never holds its
// requests while a pod is ready), and the pod runs on this machine in a user namespace of its
// own. The queue-proxy then
// serves each request of that Host as the gateway would have sent it (the same forwarded
// headers, through the same code) with its usual breaker, timeouts, stats and metrics, and
// reports each request's status and duration back for the gateway's metrics. It gives the
// connection back, with what it read and did not serve, for a request for another Host or
// one it does not serve that way (a body, an upgrade, HTTP/1.0), at its first idle moment
// after the lease (Lease), and when it drains; the gateway then routes again.
//
// The two talk over a SOCK_SEQPACKET unix socket (contract.PassSocketName) in the directory the node
// mounts in the queue-proxy's container only. A connection travels as a descriptor
// (SCM_RIGHTS); each side checks that what it received is a TCP socket, and the gateway takes
// back only a socket it passed to that queue-proxy (by the kernel's socket cookie), so a pod
// cannot hand the host any other file.
package connpass

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Lease is how long a queue-proxy serves a passed connection before it gives it back at its
// first idle moment, so the gateway routes it again: it bounds how long a connection keeps
// to one pod after the routes or the pods change.
const Lease = time.Second

// Message kinds, the first byte of each message.
const (
	kindPass   = 'P' // gateway → queue-proxy, with the connection: a pass
	kindReturn = 'R' // queue-proxy → gateway, with the connection: again, cookie, buffered
	kindClosed = 'C' // queue-proxy → gateway: cookie of a connection that ended there
	kindServed = 'S' // queue-proxy → gateway: (status, µs) of requests served
)

// maxMessage bounds a message: a pass's or a return's unread bytes are at most a reader's
// buffer (8 KiB) and the fields the gateway sets.
const maxMessage = 64 << 10

// servedRecord is the size of one request in a served message: status (2 bytes) and
// duration in microseconds (4 bytes).
const servedRecord = 6

// maxFields bounds the fields a pass may set.
const maxFields = 64

// pass is what the gateway tells the queue-proxy with a connection.
type pass struct {
	// host is the Host each request the queue-proxy serves must name.
	host string
	// client is the client's address as the gateway saw it (host:port).
	client string
	// set are the fields the gateway sets on each request (the route's appended headers).
	set [][2]string
	// buffered is what the gateway read of the connection and did not serve.
	buffered []byte
}

// The encodings: a pass is kind, then host, client, the number of fields and each field's
// name and value, each a length (2 bytes) and bytes, then the buffered bytes to the end. A
// return is kind, again (1 byte), cookie (8 bytes), then the buffered bytes.

func (p *pass) encode() ([]byte, error) {
	if len(p.set) > maxFields {
		return nil, fmt.Errorf("connpass: %d fields to set, at most %d", len(p.set), maxFields)
	}
	b := []byte{kindPass}
	var err error
	str := func(s string) {
		if len(s) > 0xffff {
			err = fmt.Errorf("connpass: a value of %d bytes", len(s))
			return
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	str(p.host)
	str(p.client)
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.set)))
	for _, f := range p.set {
		str(f[0])
		str(f[1])
	}
	b = append(b, p.buffered...)
	if err == nil && len(b) > maxMessage {
		err = fmt.Errorf("connpass: a pass of %d bytes, at most %d", len(b), maxMessage)
	}
	return b, err
}

var errMalformed = errors.New("connpass: malformed message")

func decodePass(b []byte) (*pass, error) {
	if len(b) == 0 || b[0] != kindPass {
		return nil, errMalformed
	}
	b = b[1:]
	str := func() (string, bool) {
		if len(b) < 2 {
			return "", false
		}
		n := int(binary.BigEndian.Uint16(b))
		if len(b) < 2+n {
			return "", false
		}
		s := string(b[2 : 2+n])
		b = b[2+n:]
		return s, true
	}
	p := &pass{}
	var ok bool
	if p.host, ok = str(); !ok {
		return nil, errMalformed
	}
	if p.client, ok = str(); !ok {
		return nil, errMalformed
	}
	if len(b) < 2 {
		return nil, errMalformed
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n > maxFields {
		return nil, errMalformed
	}
	for range n {
		name, ok1 := str()
		value, ok2 := str()
		if !ok1 || !ok2 {
			return nil, errMalformed
		}
		p.set = append(p.set, [2]string{name, value})
	}
	p.buffered = append([]byte(nil), b...)
	return p, nil
}

func encodeReturn(cookie uint64, again bool, buffered []byte) []byte {
	b := make([]byte, 0, 10+len(buffered))
	b = append(b, kindReturn, 0)
	if again {
		b[1] = 1
	}
	b = binary.BigEndian.AppendUint64(b, cookie)
	return append(b, buffered...)
}

func decodeReturn(b []byte) (cookie uint64, again bool, buffered []byte, err error) {
	if len(b) < 10 || b[0] != kindReturn {
		return 0, false, nil, errMalformed
	}
	return binary.BigEndian.Uint64(b[2:10]), b[1] == 1, append([]byte(nil), b[10:]...), nil
}

func encodeClosed(cookie uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{kindClosed}, cookie)
}

// Cookie is the kernel's identifier of the socket behind c, unique while the machine runs.
func Cookie(c syscall.Conn) (uint64, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cookie uint64
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cookie, serr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_COOKIE)
	}); err != nil {
		return 0, err
	}
	return cookie, serr
}

// send writes msg on link with c's descriptor.
func send(link *net.UnixConn, msg []byte, c syscall.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		_, _, serr = link.WriteMsgUnix(msg, unix.UnixRights(int(fd)), nil)
	}); err != nil {
		return err
	}
	return serr
}

// receive reads one message from link into buf, and the connection it carries if any: a TCP
// socket, with its cookie. A message that carries anything else, or more than one
// descriptor, fails with errBadDescriptor (its descriptors closed).
func receive(link *net.UnixConn, buf []byte) (msg []byte, nc net.Conn, cookie uint64, err error) {
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, flags, _, err := link.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, nil, 0, err
	}
	fds, perr := parseRights(oob[:oobn])
	if perr != nil || flags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) != 0 || len(fds) > 1 {
		closeAll(fds)
		return nil, nil, 0, errBadDescriptor
	}
	if len(fds) == 1 {
		nc, cookie, err = tcpConn(fds[0])
		if err != nil {
			return nil, nil, 0, err
		}
	}
	return buf[:n], nc, cookie, nil
}

var errBadDescriptor = errors.New("connpass: a message carried something other than one TCP socket")

func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for i := range msgs {
		got, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			return fds, err
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}

// tcpConn makes fd, received from the other side, a net.Conn after checking that it is a
// stream socket of the internet families (a client's TCP connection), and reads its cookie.
// fd is closed either way.
func tcpConn(fd int) (net.Conn, uint64, error) {
	cookie, err := checkTCP(fd)
	if err != nil {
		_ = unix.Close(fd)
		return nil, 0, err
	}
	f := os.NewFile(uintptr(fd), "passed connection")
	nc, err := net.FileConn(f) // a descriptor of its own
	_ = f.Close()
	if err != nil {
		return nil, 0, err
	}
	return nc, cookie, nil
}

func checkTCP(fd int) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return 0, errBadDescriptor
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil || typ != unix.SOCK_STREAM {
		return 0, errBadDescriptor
	}
	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil || (dom != unix.AF_INET && dom != unix.AF_INET6) {
		return 0, errBadDescriptor
	}
	cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_COOKIE)
	if err != nil {
		return 0, errBadDescriptor
	}
	return cookie, nil
}
