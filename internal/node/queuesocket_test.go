package node

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/sandbox"
)

// serveOnce accepts connections on l and answers each with what.
func serveOnce(t *testing.T, l net.Listener, what string) {
	t.Helper()
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, what)
			_ = c.Close()
		}
	}()
}

func readAll(t *testing.T, c net.Conn) string {
	t.Helper()
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A revision pod's serving port on this node is reached through its queue-proxy's socket,
// even where the socket's path is longer than a unix address may be; other ports, other
// addresses and a socket nobody listens on go to the next dialer.
func TestDialPod(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 100), "queue_socket")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil { // net.Listen cannot take the long path itself
		t.Fatal(err)
	}
	l, err := net.Listen("unix", contract.SocketName)
	_ = os.Chdir(old)
	if err != nil {
		t.Fatal(err)
	}
	serveOnce(t, l, "socket")

	var nexts []string
	next := func(_ context.Context, network, addr string) (net.Conn, error) {
		nexts = append(nexts, network+" "+addr)
		return nil, errors.New("next")
	}
	n := &Node{}
	n.sockets.set(net.ParseIP("10.244.0.7"), dir, true)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return n.DialPod(ctx, network, addr, next)
	}
	ctx := context.Background()

	c, err := dial(ctx, "tcp", "10.244.0.7:8012")
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c); got != "socket" {
		t.Errorf("10.244.0.7:8012 reached %q, want the socket", got)
	}
	for _, addr := range []string{"10.244.0.7:9090", "10.244.0.8:8012"} {
		if _, err := dial(ctx, "tcp", addr); err == nil || err.Error() != "next" {
			t.Errorf("%s: %v, want the next dialer", addr, err)
		}
	}
	_ = l.Close()
	if _, err := dial(ctx, "tcp", "10.244.0.7:8012"); err == nil || err.Error() != "next" {
		t.Errorf("a socket nobody listens on: %v, want the next dialer", err)
	}
	// A pod that had the address before this one forgets only its own socket.
	n.sockets.forget(net.ParseIP("10.244.0.7"), "/an/earlier/pod/queue_socket")
	if _, ok := n.sockets.dir("10.244.0.7"); !ok {
		t.Error("an earlier pod of the address forgot this pod's socket")
	}
	n.sockets.forget(net.ParseIP("10.244.0.7"), dir)
	want := []string{"tcp 10.244.0.7:9090", "tcp 10.244.0.8:8012", "tcp 10.244.0.7:8012"}
	if strings.Join(nexts, ",") != strings.Join(want, ",") {
		t.Errorf("next dialer got %q, want %q", nexts, want)
	}
	if _, ok := n.sockets.dir("10.244.0.7"); ok {
		t.Error("a forgotten pod's socket is still known")
	}
}

// The queue-proxy owns its socket's directory: a name it made a symbolic link to another
// socket of the host's, or anything but a socket, is not dialed.
func TestDialInRefusesWhatIsNotTheSocket(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	l, err := net.Listen("unix", filepath.Join(other, "host.sock"))
	if err != nil {
		t.Fatal(err)
	}
	serveOnce(t, l, "host")
	if err := os.Symlink(filepath.Join(other, "host.sock"), filepath.Join(dir, contract.SocketName)); err != nil {
		t.Fatal(err)
	}
	if c, err := dialIn(context.Background(), "unix", dir, contract.SocketName); err == nil {
		t.Errorf("dialed through a symbolic link, reaching %q", readAll(t, c))
	}
	if err := os.WriteFile(filepath.Join(dir, contract.PassSocketName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := dialIn(context.Background(), "unixpacket", dir, contract.PassSocketName); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("dialing a plain file: %v, want it refused as not a socket", err)
	}
	n := &Node{}
	n.sockets.set(net.ParseIP("10.244.0.9"), dir, false)
	if _, err := n.DialPass(context.Background(), "10.244.0.9:8012"); err == nil {
		t.Error("a pod in the host's user namespace was given a link for passed connections")
	}
}

// The queue-proxy gets its socket's directory and the variable that names the socket; the
// user's container gets neither.
func TestQueueProxySocketInSpec(t *testing.T) {
	pod := testPod(corev1.Container{Name: "app"}, knativeQueue)
	in := specInput{emptyLayer: "/empty", queueProxy: "/gantry", socketDir: "/data/sandboxes/x/volumes/queue_socket", memoryCapacity: 1 << 30}
	qp, err := containerSpec(pod, &pod.Spec.Containers[1], in)
	if err != nil {
		t.Fatal(err)
	}
	mounted := slices.ContainsFunc(qp.Mounts, func(m sandbox.Mount) bool {
		return m.Source == in.socketDir && m.Destination == contract.SocketDir && !m.ReadOnly
	})
	if !mounted || !slices.Contains(qp.Env, "QUEUE_SOCKET=/var/run/gantry-queue/queue.sock") {
		t.Errorf("queue-proxy: mounts %v, env %v; want the socket's directory and QUEUE_SOCKET", qp.Mounts, qp.Env)
	}
	in.img = &image.Image{}
	app, err := containerSpec(pod, &pod.Spec.Containers[0], in)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range app.Mounts {
		if m.Source == in.socketDir {
			t.Errorf("the user's container mounts the queue-proxy's socket directory at %s", m.Destination)
		}
	}
	for _, e := range app.Env {
		if strings.HasPrefix(e, "QUEUE_SOCKET=") {
			t.Errorf("the user's container gets %s", e)
		}
	}
}
