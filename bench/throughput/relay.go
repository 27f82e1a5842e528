package main

// The floor of a relay. The least a proxy hop can do is copy bytes from one connection to
// another without reading them. Two such relays, placed where the gateway and the
// queue-proxy sit (wrk → TCP on loopback → a relay on the host → a unix socket → a relay
// in the pod's network namespace → TCP on the pod's loopback → the app), show what any pair
// of relays costs on this machine before they do any HTTP work: the gateway cannot be
// cheaper than its floor. Two kinds are measured: the usual Go way, a goroutine per direction
// on Go's network poller, and one epoll loop per relay on a locked thread, the shape of an
// event-loop proxy. A third relay, in the gateway's place only, is internal/h1proxy (the
// gateway's fast path) on its own, sending every request to the queue-proxy's socket: what
// the gateway costs without its routing, the activator and the server around it. A single
// copying relay in the queue-proxy's place (in the pod's network namespace and cgroups,
// listening on the pod's IP) is the floor of a path with one relay, which is what a passed
// connection crosses. Two relays in the same place do the queue-proxy's HTTP work
// (httprelay.go), one on internal/h1proxy and one from an epoll loop.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gantry-run/gantry/internal/h1proxy"
)

const (
	relayCopy    = "goroutines"
	relayEpoll   = "epoll"
	relayH1proxy = "h1proxy"
)

// floorRelay is a pair of relays of one kind, started by startFloor.
type floorRelay struct {
	url        string
	host, pod  *exec.Cmd
	socketPath string
}

func (f *floorRelay) pids() []int { return []int{f.host.Process.Pid, f.pod.Process.Pid} }

func (f *floorRelay) stop() {
	stopRelay(f.host)
	stopRelay(f.pod)
	_ = os.Remove(f.socketPath)
}

// startFloor starts a pair of relays of kind: one in the network namespace of the process
// podPID (the queue-proxy's), listening on a unix socket in dir and sending to the app's port
// on the pod's loopback, and one on the host, listening on 127.0.0.1:port and sending to the
// socket.
func startFloor(ctx context.Context, kind, dir string, podPID, appPort, port int) (*floorRelay, error) {
	f := &floorRelay{url: fmt.Sprintf("http://127.0.0.1:%d/", port), socketPath: dir + "/floor-" + kind + ".sock"}
	var err error
	f.pod, err = startRelay(ctx, kind, f.socketPath, fmt.Sprintf("127.0.0.1:%d", appPort), "", "nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", podPID))
	if err != nil {
		return nil, err
	}
	if f.host, err = startRelay(ctx, kind, fmt.Sprintf("127.0.0.1:%d", port), f.socketPath, ""); err != nil {
		stopRelay(f.pod)
		return nil, err
	}
	return f, nil
}

// startPodRelay starts one relay of kind in the place of the queue-proxy qpPID: in its network
// namespace and its cgroups, listening on port of the pod's addresses and sending to the
// app's port on the pod's loopback. It returns the relay and its URL.
func startPodRelay(ctx context.Context, kind string, qpPID int, podIP string, port, appPort int) (*exec.Cmd, string, error) {
	addr := net.JoinHostPort(podIP, strconv.Itoa(port))
	c, err := startRelay(ctx, kind, fmt.Sprintf("0.0.0.0:%d", port), fmt.Sprintf("127.0.0.1:%d", appPort), addr,
		"nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", qpPID))
	if err != nil {
		return nil, "", err
	}
	if err := joinCgroups(c.Process.Pid, qpPID); err != nil {
		stopRelay(c)
		return nil, "", err
	}
	return c, "http://" + addr + "/", nil
}

// joinCgroups moves the process pid into every cgroup (v1 hierarchies and v2) of the
// process of.
func joinCgroups(pid, of int) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", of))
	if err != nil {
		return err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var dirs []string
		switch ctrl := parts[1]; {
		case ctrl == "": // v2: the unified hierarchy of a hybrid host, or the only one
			dirs = []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}
		case strings.HasPrefix(ctrl, "name="):
			dirs = []string{"/sys/fs/cgroup/" + strings.TrimPrefix(ctrl, "name=")}
		default:
			dirs = []string{"/sys/fs/cgroup/" + ctrl}
		}
		joined := false
		for _, d := range dirs {
			f := filepath.Join(d, parts[2], "cgroup.procs")
			if _, err := os.Stat(f); err != nil {
				continue
			}
			if err := os.WriteFile(f, []byte(strconv.Itoa(pid)), 0o644); err != nil {
				return fmt.Errorf("joining %s: %w", f, err)
			}
			joined = true
			break
		}
		if !joined {
			return fmt.Errorf("no cgroup.procs for %q of process %d", line, of)
		}
	}
	return nil
}

// startRelay runs this program again as a relay of kind, listening on listen and sending to
// upstream, under the command prefix (none, or nsenter and its arguments), and waits until it
// accepts connections at reach (listen when empty).
func startRelay(ctx context.Context, kind, listen, upstream, reach string, prefix ...string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := append(append([]string{}, prefix...), self, "-relay-kind", kind, "-relay-listen", listen, "-relay-upstream", upstream)
	c := exec.CommandContext(ctx, args[0], args[1:]...)
	c.Stdout, c.Stderr = os.Stderr, os.Stderr
	if err := c.Start(); err != nil {
		return nil, err
	}
	if reach == "" {
		reach = listen
	}
	if err := waitListening(listenNetwork(reach)); err != nil {
		stopRelay(c)
		return nil, fmt.Errorf("relay %s: %w", strings.Join(args, " "), err)
	}
	return c, nil
}

func stopRelay(c *exec.Cmd) {
	_ = c.Process.Kill()
	_ = c.Wait()
}

func waitListening(network, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout(network, addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// listenNetwork is "unix" for a path, "tcp" for host:port.
func listenNetwork(addr string) (string, string) {
	if strings.HasPrefix(addr, "/") {
		return "unix", addr
	}
	return "tcp", addr
}

// runRelay is the relay process: it serves listen, sending every connection's bytes to a
// connection of its own to upstream and back, until it is killed.
func runRelay(kind, listen, upstream string) error {
	network, addr := listenNetwork(listen)
	if network == "unix" {
		_ = os.Remove(addr)
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return err
	}
	if ul, ok := ln.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false) // the epoll relay closes it once it has its descriptor
	}
	switch kind {
	case relayCopy:
		return copyRelay(ln, upstream)
	case relayEpoll:
		return epollRelay(ln, upstream)
	case relayH1proxy:
		return h1Relay(ln, upstream)
	case relayH1HTTP:
		return h1HTTPRelay(ln, upstream)
	case relayLoopHTTP:
		return loopHTTPRelay(ln, upstream)
	}
	return fmt.Errorf("-relay-kind %q: want %s, %s, %s, %s or %s", kind, relayCopy, relayEpoll, relayH1proxy, relayH1HTTP, relayLoopHTTP)
}

// h1Relay serves ln with h1proxy's fast path, every request to the unix socket upstream,
// with the gateway's timeouts; what the fast path leaves (none of wrk's requests) gets 404.
func h1Relay(ln net.Listener, upstream string) error {
	s := &h1proxy.Server{
		Handler:           toSocket(upstream),
		Fallback:          &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 10 * time.Second},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       90 * time.Second,
		Dial: func(ctx context.Context, _, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		},
	}
	return s.Serve(ln)
}

type toSocket string

func (t toSocket) Route(_ *h1proxy.Request, f *h1proxy.Forward) bool {
	f.Addr = string(t)
	f.ErrorBody = "relay: "
	return true
}

func copyRelay(ln net.Listener, upstream string) error {
	un, ua := listenNetwork(upstream)
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			u, err := net.Dial(un, ua)
			if err != nil {
				_ = c.Close()
				return
			}
			go pump(u, c)
			pump(c, u)
		}()
	}
}

// pump copies src to dst with one buffer and plain reads and writes (no splice), then
// closes both.
func pump(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = dst.Close()
	_ = src.Close()
}

// epollRelay serves ln from one level-triggered epoll loop on a locked thread: a readable
// socket is read once and what came is written to its peer. The connections are taken out
// of Go's poller (their descriptors are duplicated and the net.Conns closed).
func epollRelay(ln net.Listener, upstream string) error {
	un, ua := listenNetwork(upstream)
	e, err := newEpollLoop(ln)
	if err != nil {
		return err
	}
	peer := map[int]int{}
	buf := make([]byte, 64<<10)
	accept := func() {
		c, _, err := syscall.Accept4(e.lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			return
		}
		uc, err := net.Dial(un, ua)
		if err != nil {
			_ = syscall.Close(c)
			return
		}
		if tc, ok := uc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		u, err := detach(uc.(interface {
			File() (*os.File, error)
		}))
		if err != nil {
			_ = syscall.Close(c)
			return
		}
		_ = syscall.SetsockoptInt(c, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		peer[c], peer[u] = u, c
		if e.watch(c) != nil || e.watch(u) != nil {
			closePair(peer, c)
		}
	}
	return e.run(accept, func(fd int) {
		r, err := syscall.Read(fd, buf)
		if errors.Is(err, syscall.EAGAIN) {
			return
		}
		if r <= 0 {
			closePair(peer, fd)
			return
		}
		// hello's requests and answers never fill a socket's buffer: a write that would
		// block is tried again at once.
		if !writeAll(peer[fd], buf[:r]) {
			closePair(peer, fd)
		}
	})
}

// epollLoop is the start of an epoll relay: the calling goroutine locked to its thread, the
// listener out of Go's poller and watched.
type epollLoop struct{ ep, lfd int }

func newEpollLoop(ln net.Listener) (*epollLoop, error) {
	runtime.LockOSThread()
	lfd, err := detach(ln.(interface {
		File() (*os.File, error)
	}))
	if err != nil {
		return nil, err
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	e := &epollLoop{ep: ep, lfd: lfd}
	return e, e.watch(lfd)
}

// watch adds fd, level-triggered, for reading.
func (e *epollLoop) watch(fd int) error {
	return syscall.EpollCtl(e.ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)})
}

// run calls accept when the listener has a connection and ready with each other readable
// descriptor, until waiting fails.
func (e *epollLoop) run(accept func(), ready func(fd int)) error {
	events := make([]syscall.EpollEvent, 128)
	for {
		n, err := syscall.EpollWait(e.ep, events, -1)
		if errors.Is(err, syscall.EINTR) {
			continue
		} else if err != nil {
			return err
		}
		for _, ev := range events[:n] {
			if fd := int(ev.Fd); fd == e.lfd {
				accept()
			} else {
				ready(fd)
			}
		}
	}
}

// detach takes a connection or listener's socket out of Go's poller: a non-blocking
// duplicate of its descriptor, the original closed.
func detach(c interface{ File() (*os.File, error) }) (int, error) {
	f, err := c.File()
	if closer, ok := c.(interface{ Close() error }); ok {
		_ = closer.Close()
	}
	if err != nil {
		return 0, err
	}
	fd, err := syscall.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		return 0, err
	}
	return fd, syscall.SetNonblock(fd, true)
}

func closePair(peer map[int]int, fd int) {
	p, ok := peer[fd]
	_ = syscall.Close(fd)
	delete(peer, fd)
	if ok {
		_ = syscall.Close(p)
		delete(peer, p)
	}
}
