package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// "Machines" on this host for the overlay's tests: network namespaces joined by a LAN bridge
// (hack/netns-machines.sh). The host holds the LAN's first address, machine i the (i+1)-th.
const (
	lanBridge    = "gantry-ov0"
	lanPrefix    = "10.228.0"
	netnsPrefix  = "gantry-ovm-"
	machineNetns = "/run/netns/"
)

// newMachines makes the namespaces and the LAN, and removes them when the test ends (after
// the cleanups registered later: the processes in them stop first).
func newMachines(t *testing.T, names ...string) {
	t.Helper()
	script, err := filepath.Abs("../../hack/netns-machines.sh")
	if err != nil {
		t.Fatal(err)
	}
	run := func(action string) ([]byte, error) {
		cmd := exec.Command(script, append([]string{action}, names...)...)
		cmd.Env = append(os.Environ(), "LAN_BRIDGE="+lanBridge, "LAN_PREFIX="+lanPrefix, "NETNS_PREFIX="+netnsPrefix)
		return cmd.CombinedOutput()
	}
	t.Cleanup(func() {
		if out, err := run("down"); err != nil {
			t.Errorf("netns-machines.sh down: %v\n%s", err, out)
		}
	})
	if out, err := run("up"); err != nil {
		t.Fatalf("netns-machines.sh up: %v\n%s", err, out)
	}
}

// inNetns runs fn on a thread in the network namespace ns (a name under /run/netns). A socket
// made by fn stays in ns after it returns, wherever it is used from.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is unlocked only once it is back in its own namespace; otherwise it ends
		// with the goroutine.
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(machineNetns + ns)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("setns back: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// netnsClient is an HTTP client whose connections start in the namespace ns ("" for the
// host's): it reaches what a process on that machine reaches.
func netnsClient(ns string) *http.Client {
	if ns == "" {
		return &http.Client{Timeout: 15 * time.Second}
	}
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := inNetns(ns, func() error {
				var err error
				conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		}},
	}
}

// forwardInto listens on 127.0.0.1:port inside ns and forwards each connection to the
// host's 127.0.0.1:port: the server's embedded registry, which listens on the host's
// loopback only, answers the agents at the address its images are named by.
func forwardInto(t *testing.T, ns string, port int) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var ln net.Listener
	if err := inNetns(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listening on %s in %s: %v", addr, ns, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					return
				}
				defer out.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
				go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
				<-done
			}()
		}
	}()
}
