package node

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/sandbox"
)

// queueSocketVolume is the sandbox volume (Sandboxes.VolumeDir) that holds a revision pod's
// queue-proxy socket. The underscore keeps it apart from the pod's own volumes, whose names
// are DNS labels.
const queueSocketVolume = "queue_socket"

// queueSockets maps the address of each revision pod on this node to the host directory of
// its queue-proxy's socket (contract.SocketDir), and tells the pods that may be passed client
// connections.
type queueSockets struct {
	mu       sync.Mutex
	dirs     map[string]string
	passable map[string]bool
}

func (s *queueSockets) set(ip net.IP, dir string, passable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirs == nil {
		s.dirs, s.passable = map[string]string{}, map[string]bool{}
	}
	s.dirs[ip.String()] = dir
	s.passable[ip.String()] = passable
}

// forget drops ip's entry if it is still dir: a new pod given the address meanwhile keeps its
// own.
func (s *queueSockets) forget(ip net.IP, dir string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirs[ip.String()] == dir {
		delete(s.dirs, ip.String())
		delete(s.passable, ip.String())
	}
}

func (s *queueSockets) dir(host string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.dirs[host]
	return d, ok
}

// passDir is the socket directory of the pod at host when it may be passed connections.
func (s *queueSockets) passDir(host string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.dirs[host]
	return d, ok && s.passable[host]
}

// queueSocketDir is the host directory to mount at contract.SocketDir in pod's queue-proxy,
// "" when it gets none: pods without one, and pods that gVisor runs (its sandbox does not
// pass host sockets through).
func (w *worker) queueSocketDir() (string, error) {
	if sidecarOf(w.pod) == nil || w.sb == nil || w.sb.IP == nil || runtimeOf(w.pod) != sandbox.RuntimeRunc {
		return "", nil
	}
	dir, err := w.n.opts.Sandboxes.VolumeDir(w.sb.ID, queueSocketVolume)
	if err != nil {
		return "", err
	}
	// A passed connection is a socket of the host's network namespace. Whoever holds one
	// may ask the kernel for that namespace (SIOCGSKNS) with CAP_NET_ADMIN over it, which
	// only a pod in the host's user namespace can have: such pods are passed nothing.
	w.n.sockets.set(w.sb.IP, dir, !hostUsers(w.pod))
	return dir, nil
}

// DialPod is how the gateway and the activator of this machine connect to pods: a revision
// pod's queue-proxy serving port (contract.HTTPPort) on this node through its socket, which
// spares each message the pod network (veth, bridge, netfilter, a second TCP stack); every
// other address, and a socket that cannot be reached (a queue-proxy not listening yet), with
// next.
func (n *Node) DialPod(ctx context.Context, network, addr string, next func(ctx context.Context, network, addr string) (net.Conn, error)) (net.Conn, error) {
	if host, p, err := net.SplitHostPort(addr); err == nil && p == servingPort {
		if dir, ok := n.sockets.dir(host); ok {
			if c, err := dialIn(ctx, "unix", dir, contract.SocketName); err == nil {
				return c, nil
			}
		}
	}
	return next(ctx, network, addr)
}

// DialPass opens a link for passing client connections (internal/connpass) to the
// queue-proxy of the revision pod whose serving port is addr, when it runs on this node in a
// user namespace of its own.
func (n *Node) DialPass(ctx context.Context, addr string) (*net.UnixConn, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil || p != servingPort {
		return nil, fmt.Errorf("node: %s is not a queue-proxy's serving port", addr)
	}
	dir, ok := n.sockets.passDir(host)
	if !ok {
		return nil, fmt.Errorf("node: the pod at %s takes no passed connections", host)
	}
	c, err := dialIn(ctx, "unixpacket", dir, contract.PassSocketName)
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}

var servingPort = strconv.Itoa(contract.HTTPPort)

// dialIn connects to the unix socket name in dir. A socket's path is limited to 107 bytes,
// which a data dir's sandbox paths can pass, so it is reached through /proc/self/fd and a
// descriptor. The queue-proxy owns what is in dir: name is opened without following a
// symbolic link and must be a socket, so a pod cannot point the host at another socket of
// the host's.
func dialIn(ctx context.Context, network, dir, name string) (net.Conn, error) {
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer func() { _ = unix.Close(dfd) }()
	fd, err := unix.Openat(dfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(dir, name), Err: err}
	}
	defer func() { _ = unix.Close(fd) }()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: filepath.Join(dir, name), Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, fmt.Errorf("node: %s is not a socket", filepath.Join(dir, name))
	}
	var d net.Dialer
	return d.DialContext(ctx, network, fmt.Sprintf("/proc/self/fd/%d", fd))
}
