package integration

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/gantry-run/gantry/internal/testenv"
)

// standIn is a network namespace the test makes, joined to the host by a veth pair, that
// stands in for places pods must not reach: a link-local address for the cloud metadata
// service and a private address for the host's LAN. Nothing sent to them leaves this machine:
// the host routes both to the veth.
type standIn struct {
	name                string
	metadata, lan       net.IP
	metadataURL, lanURL string
	// public is an address of a public range (TEST-NET-2) that pods do reach, as they reach
	// the internet: its server answers with the address the connection came from.
	public    net.IP
	publicURL string
}

// newStandIn makes the namespace, with an HTTP server answering "stand-in" on both
// addresses; the test's end removes it.
func newStandIn(t *testing.T) *standIn {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2)")
	}
	// Addresses of the test's own, so that two runs on one machine do not meet.
	r := rand.IntN(60) + 1
	s := &standIn{
		name:     fmt.Sprintf("gantry-iso-%d-%d", os.Getpid(), r),
		metadata: net.IPv4(169, 254, 77, byte(4*r+2)).To4(),
		lan:      net.IPv4(172, 31, 250, byte(4*r+2)).To4(),
		public:   net.IPv4(198, 51, 100, byte(4*r+2)).To4(),
	}
	host, peer := fmt.Sprintf("giso%dh%d", os.Getpid()%100000, r), fmt.Sprintf("giso%dp%d", os.Getpid()%100000, r)
	ipcmd := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ipcmd("netns", "add", s.name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", s.name).Run() })
	ipcmd("link", "add", host, "type", "veth", "peer", "name", peer, "netns", s.name)
	for _, a := range []net.IP{s.metadata, s.lan, s.public} {
		hostSide := net.IPv4(a[0], a[1], a[2], a[3]-1)
		ipcmd("addr", "add", hostSide.String()+"/30", "dev", host)
		ipcmd("-n", s.name, "addr", "add", a.String()+"/30", "dev", peer)
	}
	ipcmd("link", "set", host, "up")
	ipcmd("-n", s.name, "link", "set", peer, "up")
	ipcmd("-n", s.name, "link", "set", "lo", "up")

	for _, a := range []net.IP{s.metadata, s.lan} {
		ln := listenIn(t, s.name, net.JoinHostPort(a.String(), "8081"))
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("stand-in")) }),
			ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
	}
	ln := listenIn(t, s.name, net.JoinHostPort(s.public.String(), "8081"))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		_, _ = w.Write([]byte(host))
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	s.publicURL = "http://" + net.JoinHostPort(s.public.String(), "8081") + "/"
	s.metadataURL = "http://" + net.JoinHostPort(s.metadata.String(), "8081") + "/"
	s.lanURL = "http://" + net.JoinHostPort(s.lan.String(), "8081") + "/"
	return s
}

// listenIn listens on addr inside the named network namespace; the socket stays there.
func listenIn(t *testing.T, netns, addr string) net.Listener {
	t.Helper()
	type result struct {
		ln  net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// A thread whose namespace could not be restored is not unlocked: it ends with the
		// goroutine.
		home, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			done <- result{err: err}
			return
		}
		defer home.Close()
		target, err := os.Open("/run/netns/" + netns)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: err}
			return
		}
		ln, err := net.Listen("tcp", addr)
		if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		done <- result{ln, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("listening on %s in %s: %v", addr, netns, r.err)
	}
	return r.ln
}

// hostGet GETs u from the host, in the test's own network namespace.
func hostGet(ctx context.Context, u string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// TestPodNetworkIsolation checks, from inside a pod, what it reaches and what it does not: the
// gateway and the cluster DNS on the bridge address, another pod, a public address beyond the
// host (masqueraded), yes; the kubelet API and
// any other port of the host, a stand-in "metadata" listener on a link-local address and a
// stand-in "LAN" listener on a private address, no, while the host itself reaches them all.
func TestPodNetworkIsolation(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ctx := context.Background()
	ns := newNamespace(t, env.Client)
	stand := newStandIn(t)

	// A port every host address serves, the bridge's among them.
	anyHost, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	hostSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("host")) }),
		ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hostSrv.Serve(anyHost) }()
	defer hostSrv.Close()
	hostPort := strconv.Itoa(anyHost.Addr().(*net.TCPAddr).Port)

	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/file", Port: intOrStr(8080)}}, PeriodSeconds: 1}
	createPod(t, env, ns, podWith("fetch", corev1.Container{Name: "fetch", Image: env.Image(t, "fetch"), ReadinessProbe: probe}))
	createPod(t, env, ns, podWith("other", corev1.Container{Name: "other", Image: env.Image(t, "fetch"), ReadinessProbe: probe}))
	pod := waitPod(t, env, ns, "fetch", "running", 90*time.Second, running)
	other := waitPod(t, env, ns, "other", "running", 90*time.Second, running)
	api := "http://" + pod.Status.PodIP + ":8080"

	nodeIP, kubelet := kubeletOf(t, env, pod)
	gw := env.Server.PodNetwork.Gateway().String()

	// fromPod fetches u from inside the pod: reached says whether an HTTP answer came back.
	fromPod := func(t *testing.T, u string) (reached bool, why string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		r, err := inPod(ctx, api, "/fetch", url.Values{"url": {u}})
		if err != nil {
			t.Fatalf("asking the pod to fetch %s: %v", u, err)
		}
		if r.Error != "" {
			return false, r.Error
		}
		return true, fmt.Sprintf("status %d", r.Status)
	}

	t.Run("reached", func(t *testing.T) {
		if ok, why := fromPod(t, "http://"+gw+"/"); !ok { // the gateway for Routes: any answer will do
			t.Errorf("the pod cannot reach the gateway on the bridge address: %s", why)
		}
		if ok, why := fromPod(t, "http://"+other.Status.PodIP+":8080/file?path=/etc/hostname"); !ok {
			t.Errorf("the pod cannot reach another pod: %s", why)
		}
		// Beyond the host, the pod's connection leaves masqueraded as the host's address.
		ctxPub, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if r, err := inPod(ctxPub, api, "/fetch", url.Values{"url": {stand.publicURL}}); err != nil || r.Error != "" {
			t.Errorf("the pod cannot reach a public address beyond the host: %v %s", err, r.Error)
		} else if hostSide := net.IPv4(stand.public[0], stand.public[1], stand.public[2], stand.public[3]-1).String(); r.Body != hostSide {
			t.Errorf("the public address saw the pod's connection come from %q, want the host's %s (masqueraded; the pod is %s)", r.Body, hostSide, pod.Status.PodIP)
		}
		r, err := inPod(ctx, api, "/resolve", url.Values{"name": {"kubernetes.default.svc.cluster.local"}})
		if err != nil || r.Error != "" || len(r.Addrs) == 0 {
			t.Errorf("the pod cannot resolve through the cluster DNS: %v %s", err, r.Error)
		}
	})

	t.Run("not reached", func(t *testing.T) {
		for _, tc := range []struct{ what, u string }{
			{"the kubelet API on the bridge address", "http://" + net.JoinHostPort(gw, kubelet) + "/healthz"},
			{"the kubelet API on the node's address", "http://" + net.JoinHostPort(nodeIP, kubelet) + "/healthz"},
			{"a host port on the bridge address", "http://" + net.JoinHostPort(gw, hostPort) + "/"},
			{"a host port on the node's address", "http://" + net.JoinHostPort(nodeIP, hostPort) + "/"},
			{"the stand-in metadata address", stand.metadataURL},
			{"the stand-in LAN address", stand.lanURL},
		} {
			// The host reaches each (the kubelet API speaks TLS: any answer will do)...
			u := tc.u
			if strings.Contains(tc.what, "kubelet") {
				u = strings.Replace(u, "http://", "https://", 1)
			}
			if strings.Contains(tc.what, "bridge address") && strings.Contains(tc.what, "kubelet") {
				u = "" // it listens on the node's address only
			}
			if u != "" {
				if _, err := hostGet(ctx, u); err != nil && !isTLSError(err) {
					t.Errorf("the host itself cannot reach %s (%s): %v", tc.what, u, err)
				}
			}
			// ... the pod does not.
			if ok, why := fromPod(t, tc.u); ok {
				t.Errorf("the pod reaches %s (%s): %s", tc.what, tc.u, why)
			}
		}
	})
}

// isTLSError says whether err is a TLS handshake's failure, which proves the server answered.
func isTLSError(err error) bool {
	var unknown x509.UnknownAuthorityError
	return errors.As(err, &unknown) || strings.Contains(err.Error(), "tls: ")
}
