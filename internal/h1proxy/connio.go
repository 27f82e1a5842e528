package h1proxy

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// connIO reads and writes one of the fast path's connections (a client's, an upstream's)
// with the read and write system calls made in place, and bounds its writes lazily.
//
// In place: a net.Conn's Read and Write enter Go's system-call state, in which the runtime's
// monitor (sysmon) hands the goroutine's P to another thread once the call has spanned one of
// its ticks, and keeps ticking every 20 µs while that happens. A proxy hop makes four such
// calls per request, and a write on loopback lasts long enough (it runs the receiver's TCP
// work) that the hand-offs and the ticks cost the queue-proxy about 2 µs of its ~30 µs per
// request (docs/benchmarks.md). The sockets are non-blocking: a call returns at once, with
// EAGAIN when it would wait, and the wait itself still goes through Go's poller (RawConn), so
// doing the call in place keeps nothing else from running for longer than the copy takes.
//
// Lazily: most writes (a request's head, an answer that fits the socket's buffer) never wait,
// so a write's bound (writeBy) is set on the connection only when a write must wait; the
// other writes spare setting and clearing a timer.
type connIO struct {
	nc net.Conn
	rc syscall.RawConn // nil when nc has none: nc's own Read and Write are used
	// writeBy bounds the writes that must wait (zero: no bound); applied says nc's write
	// deadline holds it.
	writeBy time.Time
	applied bool
	// readBy is the read deadline set on nc (zero: none), by boundReads.
	readBy time.Time

	// The state of the call in progress, kept here so that the functions given to rc are
	// made once per connection, not once per call.
	readFn, writeFn func(fd uintptr) bool
	buf             []byte
	n               int
	errno           syscall.Errno
	mustWait        bool
}

func newConnIO(nc net.Conn) *connIO {
	c := &connIO{nc: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
			c.readFn, c.writeFn = c.read, c.write
		}
	}
	return c
}

// boundWrites bounds the writes from now on by t (zero: no bound).
func (c *connIO) boundWrites(t time.Time) {
	c.writeBy = t
	if c.rc == nil || c.applied {
		_ = c.nc.SetWriteDeadline(t)
		c.applied = !t.IsZero()
	}
}

// boundReads sets nc's read deadline to t (zero: none), unless the one set is earlier than t
// by at most slack: a bound that may end a little early (the wait for a client's next request,
// the moment to start watching a client) then does not move a timer for every request. Every
// read deadline of nc but Server.closeIdle's is set here.
func (c *connIO) boundReads(t time.Time, slack time.Duration) {
	if t.Equal(c.readBy) || (!t.IsZero() && !c.readBy.IsZero() && !c.readBy.After(t) && t.Sub(c.readBy) <= slack) {
		return
	}
	_ = c.nc.SetReadDeadline(t)
	c.readBy = t
}

// Read reads into p; a connection's end is io.EOF, as net.Conn's.
func (c *connIO) Read(p []byte) (int, error) {
	if c.rc == nil || len(p) == 0 {
		return c.nc.Read(p)
	}
	c.buf, c.n, c.errno = p, 0, 0
	err := c.rc.Read(c.readFn)
	n, errno := c.n, c.errno
	c.buf = nil
	switch {
	case err != nil:
		return 0, err // the read deadline, or the connection closed
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *connIO) read(fd uintptr) bool {
	for {
		n, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&c.buf[0])), uintptr(len(c.buf)))
		switch e {
		case 0:
			c.n = int(n)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // the poller waits, within the read deadline
		}
		c.errno = e
		return true
	}
}

// Write writes all of p, or fails; a write that must wait is bound by writeBy.
func (c *connIO) Write(p []byte) (int, error) {
	if c.rc == nil || len(p) == 0 {
		return c.nc.Write(p)
	}
	c.buf, c.n, c.errno = p, 0, 0
	defer func() { c.buf = nil }()
	for {
		c.mustWait = false
		if err := c.rc.Write(c.writeFn); err != nil {
			return c.n, err // the write deadline, or the connection closed
		}
		if c.errno != 0 {
			return c.n, c.opError("write", c.errno)
		}
		if !c.mustWait {
			return c.n, nil
		}
		// The socket's buffer is full: bound the wait, then wait.
		_ = c.nc.SetWriteDeadline(c.writeBy)
		c.applied = true
	}
}

func (c *connIO) write(fd uintptr) bool {
	for c.n < len(c.buf) {
		n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&c.buf[c.n])), uintptr(len(c.buf)-c.n))
		switch {
		case e == syscall.EINTR:
		case e == syscall.EAGAIN:
			if !c.applied && !c.writeBy.IsZero() {
				c.mustWait = true
				return true
			}
			return false // the poller waits, within the write deadline
		case e != 0:
			c.errno = e
			return true
		case n == 0:
			c.errno = syscall.EIO // a write that makes no progress
			return true
		default:
			c.n += int(n)
		}
	}
	return true
}

func (c *connIO) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: c.nc.LocalAddr().Network(), Source: c.nc.LocalAddr(), Addr: c.nc.RemoteAddr(),
		Err: os.NewSyscallError(op, errno)}
}
