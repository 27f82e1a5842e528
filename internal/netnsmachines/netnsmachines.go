// Package netnsmachines makes "machines" on one host for tests and benchmarks of several
// nodes: one network namespace per machine, each with an eth0 on a LAN bridge of the host, and
// no route but the LAN's (so nothing reaches another machine's pods but the overlay). It also
// reaches into a machine: running code in its namespace, and an HTTP client whose connections
// start there. hack/netns-machines.sh does the same by hand.
package netnsmachines

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// NetnsDir is where `ip netns` keeps the namespaces' handles.
const NetnsDir = "/run/netns/"

// LAN is the machines' network: the host's bridge, the LAN's /24 (its first three octets; the
// host holds .1, machine i .i+2) and the prefix of the namespaces' names.
type LAN struct {
	Bridge, Prefix, NetnsPrefix string
}

// Machine is one namespace on the LAN.
type Machine struct {
	// Name is the machine's own name; Netns its namespace (NetnsPrefix + Name); IP its LAN
	// address.
	Name, Netns, IP string
}

// HostIP is the host's address on the LAN.
func (l LAN) HostIP() string { return l.Prefix + ".1" }

// Path is the handle of the namespace ns, for nsenter --net= and setns.
func Path(ns string) string { return NetnsDir + ns }

func vethName(ns string) string {
	name := "v-" + ns
	if len(name) > unix.IFNAMSIZ-1 {
		name = name[:unix.IFNAMSIZ-1]
	}
	return name
}

// Up makes the bridge with the host's address and one machine per name; what is there
// already is kept.
func (l LAN) Up(names ...string) ([]Machine, error) {
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("the ip command (iproute2) is needed: %w", err)
	}
	if err := ipCmd("link", "show", l.Bridge); err != nil {
		if err := ipCmd("link", "add", l.Bridge, "type", "bridge"); err != nil {
			return nil, err
		}
	}
	for _, args := range [][]string{{"addr", "replace", l.HostIP() + "/24", "dev", l.Bridge}, {"link", "set", l.Bridge, "up"}} {
		if err := ipCmd(args...); err != nil {
			return nil, err
		}
	}
	var ms []Machine
	for i, name := range names {
		m := Machine{Name: name, Netns: l.NetnsPrefix + name, IP: fmt.Sprintf("%s.%d", l.Prefix, i+2)}
		if _, err := os.Stat(Path(m.Netns)); err != nil {
			if err := ipCmd("netns", "add", m.Netns); err != nil {
				return nil, err
			}
		}
		veth := vethName(m.Netns)
		if err := ipCmd("link", "show", veth); err != nil {
			if err := ipCmd("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", m.Netns); err != nil {
				return nil, err
			}
		}
		for _, args := range [][]string{
			{"link", "set", veth, "master", l.Bridge, "up"},
			{"-n", m.Netns, "addr", "replace", m.IP + "/24", "dev", "eth0"},
			{"-n", m.Netns, "link", "set", "eth0", "up"},
			{"-n", m.Netns, "link", "set", "lo", "up"},
		} {
			if err := ipCmd(args...); err != nil {
				return nil, err
			}
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// Down removes the machines named and the bridge; what is not there is no error.
func (l LAN) Down(names ...string) error {
	var errs []error
	for _, name := range names {
		ns := l.NetnsPrefix + name
		_ = ipCmd("link", "del", vethName(ns))
		if _, err := os.Stat(Path(ns)); err == nil {
			errs = append(errs, ipCmd("netns", "del", ns))
		}
	}
	if ipCmd("link", "show", l.Bridge) == nil {
		errs = append(errs, ipCmd("link", "del", l.Bridge))
	}
	return errors.Join(errs...)
}

func ipCmd(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// InNetns runs fn on a thread in the namespace ns ("" runs it where it is). A socket fn makes
// stays in ns after it returns, wherever it is used from.
func InNetns(ns string, fn func() error) error {
	if ns == "" {
		return fn()
	}
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
		target, err := os.Open(Path(ns))
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

// DialContext dials from the namespace ns ("" for this process's).
func DialContext(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := InNetns(ns, func() error {
		var err error
		conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return conn, err
}

// Client is an HTTP client whose connections start in ns ("" for this process's): it
// reaches what a process on that machine reaches.
func Client(ns string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return DialContext(ctx, ns, network, addr)
		},
	}}
}
