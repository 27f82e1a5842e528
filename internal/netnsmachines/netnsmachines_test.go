package netnsmachines

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/gantry-run/gantry/internal/freeport"
)

// A LAN of this test's own: off the e2e tests' (10.228.0/24 on gantry-ov0).
var testLAN = LAN{Bridge: "gantry-ov5", Prefix: "10.227.255", NetnsPrefix: "gantry-ovm-t"}

func TestMachines(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2")
	}
	t.Cleanup(func() { _ = testLAN.Down("a", "b") })
	ms, err := testLAN.Up("a", "b")
	if err != nil {
		t.Fatal(err)
	}
	// Twice: what is there is kept.
	if _, err := testLAN.Up("a", "b"); err != nil {
		t.Fatalf("a second Up: %v", err)
	}
	if ms[0].IP != "10.227.255.2" || ms[1].Netns != "gantry-ovm-tb" {
		t.Errorf("machines = %+v", ms)
	}
	ports, err := freeport.Get(1)
	if err != nil {
		t.Fatal(err)
	}
	// A server on machine a's LAN address answers machine b, and not this process directly
	// from a's loopback.
	addr := net.JoinHostPort(ms[0].IP, fmt.Sprint(ports[0]))
	var ln net.Listener
	if err := InNetns(ms[0].Netns, func() error {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "from a") }),
		ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	if got := get(t, Client(ms[1].Netns, 5*time.Second), "http://"+addr+"/"); got != "from a" {
		t.Errorf("b got %q from a", got)
	}

	// A machine does not reach the host's loopback (where the server's embedded registry
	// listens): agents read it through the server's registry for nodes.
	host, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hostSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "from the host") }),
		ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hostSrv.Serve(host) }()
	t.Cleanup(func() { _ = hostSrv.Close() })
	if _, err := Client(ms[0].Netns, time.Second).Get("http://" + host.Addr().String() + "/"); err == nil {
		t.Fatal("a reached the host's loopback")
	}

	if err := testLAN.Down("a", "b"); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if _, err := os.Stat(Path(m.Netns)); err == nil {
			t.Errorf("%s is still there after Down", m.Netns)
		}
	}
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
