package podnet

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestRuleset(t *testing.T) {
	base := Policy{
		Bridge: "gantry0", PodCIDR: "10.244.0.0/16", ServiceCIDR: "10.43.0.0/16",
		GatewayPorts:  []Port{{"udp", 53}, {"tcp", 53}, {"tcp", 80}},
		APIServerPort: 6443,
	}
	for _, tc := range []struct {
		name      string
		mutate    func(*Policy)
		want, not []string
		err       string
	}{{
		name: "default",
		want: []string{
			"add table inet gantry-pods-gantry0\ndelete table inet gantry-pods-gantry0\n",
			"add table bridge gantry-pods-gantry0\ndelete table bridge gantry-pods-gantry0\n",
			`iifname "gantry0" ip saddr != 10.244.0.0/16 drop`,
			`iifname "gantry0" ip saddr 10.244.0.1 drop`,
			`iifname "gantry0" ct state established,related accept`,
			`iifname "gantry0" ip daddr 10.244.0.1 udp dport 53 accept`,
			`iifname "gantry0" ip daddr 10.244.0.1 tcp dport 53 accept`,
			`iifname "gantry0" ip daddr 10.244.0.1 tcp dport 80 accept`,
			`iifname "gantry0" ct status dnat ct original ip daddr 10.43.0.1 tcp dport 6443 accept`,
			"type filter hook input priority filter; policy accept;\n" +
				"\t\tiifname \"gantry0\" ct state established,related accept\n",
			`iifname "gantry0" reject with icmpx admin-prohibited` + "\n\t}\n\tchain forward",
			`iifname "gantry0" ip daddr { 10.244.0.0/16, 10.43.0.0/16 } accept`,
			`iifname "gantry0" ip daddr { 169.254.0.0/16, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 } reject with icmpx admin-prohibited`,
			"arp saddr ip 10.244.0.1 drop",
		},
	}, {
		name:   "private ranges open, link-local still closed",
		mutate: func(p *Policy) { p.EgressPrivate = true },
		want:   []string{`iifname "gantry0" ip daddr { 169.254.0.0/16 } reject with icmpx admin-prohibited`},
		not:    []string{"192.168.0.0/16"},
	}, {
		name:   "no API server through the kubernetes Service",
		mutate: func(p *Policy) { p.APIServerPort = 0 },
		not:    []string{"ct status dnat"},
	}, {
		name:   "IPv6",
		mutate: func(p *Policy) { p.PodCIDR, p.ServiceCIDR = "fd00:10::/64", "fd00:43::/112" },
		want: []string{
			`iifname "gantry0" ip6 daddr fd00:10::1 udp dport 53 accept`,
			`iifname "gantry0" ip6 daddr { fe80::/10, fc00::/7 } reject`,
			`iifname "gantry0" ip6 saddr != { fd00:10::/64, fe80::/10 } drop`,
			`iifname "gantry0" icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept`,
			"ip6 saddr fd00:10::1 drop",
		},
		not: []string{"arp"},
	}, {
		name:   "an overlay: the cluster's range like the node's own, masquerade of what leaves it",
		mutate: func(p *Policy) { p.PodCIDR, p.ClusterCIDR = "10.224.1.0/24", "10.224.0.0/14" },
		want: []string{
			`iifname "gantry0" ip daddr { 10.224.0.0/14, 10.43.0.0/16 } accept`,
			`iifname "gantry0" ip saddr != 10.224.1.0/24 drop`,
			"type nat hook postrouting priority srcnat; policy accept;\n" +
				"\t\tip saddr 10.224.1.0/24 ip daddr != { 10.224.0.0/14, 224.0.0.0/4 } masquerade",
		},
	}, {
		name: "no overlay: masquerade of what leaves the node's range",
		want: []string{
			"type nat hook postrouting priority srcnat; policy accept;\n" +
				"\t\tip saddr 10.244.0.0/16 ip daddr != { 10.244.0.0/16, 224.0.0.0/4 } masquerade",
		},
	}, {
		name:   "a pod range outside the cluster's",
		mutate: func(p *Policy) { p.ClusterCIDR = "10.224.0.0/14" },
		err:    "pod CIDR 10.244.0.0/16 is not inside cluster CIDR 10.224.0.0/14",
	}, {
		name:   "a bridge name that cannot be quoted",
		mutate: func(p *Policy) { p.Bridge = `br"0` },
		err:    "may name a bridge",
	}, {
		name:   "two families",
		mutate: func(p *Policy) { p.ServiceCIDR = "fd00:43::/112" },
		err:    "one family",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := base
			if tc.mutate != nil {
				tc.mutate(&p)
			}
			got, err := Ruleset(p)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("ruleset lacks %q:\n%s", w, got)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("ruleset has %q:\n%s", n, got)
				}
			}
		})
	}
}

// TestApplyRulesIsIdempotentAndRemovable writes the rules twice into a network namespace of
// the test's own, so nft itself checks the script, then removes them.
func TestApplyRulesIsIdempotentAndRemovable(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft")
	}
	inNetNS(t, func() {
		ctx := context.Background()
		p := Policy{Bridge: "podnet-test0", PodCIDR: "10.99.0.0/16", ServiceCIDR: "10.98.0.0/16",
			GatewayPorts: []Port{{"udp", 53}, {"tcp", 80}}, APIServerPort: 6443}
		for i := range 2 {
			if err := ApplyRules(ctx, p); err != nil {
				t.Fatalf("ApplyRules #%d: %v", i+1, err)
			}
		}
		out, err := exec.Command("nft", "list", "table", "inet", TableName(p.Bridge)).CombinedOutput()
		if err != nil {
			t.Fatalf("nft list: %v: %s", err, out)
		}
		if n := strings.Count(string(out), "tcp dport 80 accept"); n != 1 {
			t.Errorf("after two applies the gateway port's rule is there %d times, want once:\n%s", n, out)
		}
		// With an overlay's range: nft takes the masquerade chain too.
		overlay := p
		overlay.ClusterCIDR = "10.96.0.0/12"
		if err := ApplyRules(ctx, overlay); err != nil {
			t.Fatalf("ApplyRules with a cluster CIDR: %v", err)
		}
		for range 2 {
			if err := RemoveRules(ctx, p.Bridge); err != nil {
				t.Fatalf("RemoveRules: %v", err)
			}
		}
		out, _ = exec.Command("nft", "list", "tables").CombinedOutput()
		if strings.Contains(string(out), TableName(p.Bridge)) {
			t.Errorf("tables left after RemoveRules:\n%s", out)
		}
		// nft takes the IPv6 rules too.
		p.PodCIDR, p.ServiceCIDR = "fd00:99::/64", "fd00:98::/112"
		if err := ApplyRules(ctx, p); err != nil {
			t.Errorf("ApplyRules, IPv6: %v", err)
		}
	})
}

// TestRulesKeepAPodOffTheHostAndItsOwnAddress builds a bridge and a "pod" (a network namespace
// on a veth, as the CNI bridge plugin makes one) in a network namespace of the test's own, and
// checks from the pod, first without the rules, then with them: a port of the gateway that
// the rules open answers both times; another port of the host, and a connection from an
// address outside the pod range, work without the rules and fail with them.
func TestRulesKeepAPodOffTheHostAndItsOwnAddress(t *testing.T) {
	for _, bin := range []string{"nft", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skip("needs " + bin)
		}
	}
	inNetNS(t, func() {
		ctx := context.Background()
		pod := fmt.Sprintf("podnet-test-pod-%d", os.Getpid())
		ipcmd := func(args ...string) {
			t.Helper()
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
			}
		}
		gw := &net.IPNet{IP: net.ParseIP("10.99.0.1").To4(), Mask: net.CIDRMask(16, 32)}
		if err := EnsureBridge("podnet-test0", gw); err != nil {
			t.Fatal(err)
		}
		ipcmd("netns", "add", pod)
		defer func() { _ = exec.Command("ip", "netns", "del", pod).Run() }()
		ipcmd("link", "add", "podnet-vp0", "type", "veth", "peer", "name", "eth0", "netns", pod)
		ipcmd("link", "set", "podnet-vp0", "master", "podnet-test0", "up")
		ipcmd("-n", pod, "addr", "add", "10.99.0.2/16", "dev", "eth0")
		// An address outside the pod range, which the host routes to the pod: a spoofed source.
		ipcmd("-n", pod, "addr", "add", "10.97.0.9/32", "dev", "eth0")
		ipcmd("-n", pod, "link", "set", "eth0", "up")
		ipcmd("-n", pod, "route", "add", "default", "via", "10.99.0.1")
		ipcmd("route", "add", "10.97.0.9/32", "dev", "podnet-test0")

		var open, closed net.Listener
		for _, l := range []*net.Listener{&open, &closed} {
			ln, err := net.Listen("tcp", "10.99.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					_ = c.Close()
				}
			}()
			defer ln.Close()
			*l = ln
		}
		port := func(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }
		dial := func(from string, l net.Listener) error {
			return inNamedNetNS(pod, func() error {
				d := net.Dialer{Timeout: time.Second}
				if from != "" {
					d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
				}
				c, err := d.Dial("tcp", l.Addr().String())
				if err == nil {
					_ = c.Close()
				}
				return err
			})
		}
		cases := []struct {
			what     string
			from     string
			to       net.Listener
			withRule bool // reached once the rules are in
		}{
			{"an open gateway port", "", open, true},
			{"another host port", "", closed, false},
			{"the open port from an address outside the pod range", "10.97.0.9", open, false},
		}
		for _, c := range cases {
			if err := dial(c.from, c.to); err != nil {
				t.Fatalf("without the rules, %s: %v (the test's network does not work)", c.what, err)
			}
		}
		p := Policy{Bridge: "podnet-test0", PodCIDR: "10.99.0.0/16", ServiceCIDR: "10.98.0.0/16",
			GatewayPorts: []Port{{"tcp", port(open)}}}
		if err := ApplyRules(ctx, p); err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			err := dial(c.from, c.to)
			if c.withRule && err != nil {
				t.Errorf("with the rules, %s: %v", c.what, err)
			}
			if !c.withRule && err == nil {
				t.Errorf("with the rules, %s is still reached", c.what)
			}
		}
	})
}

// inNamedNetNS runs fn on a thread in the network namespace /run/netns/<name>.
func inNamedNetNS(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- err
			return
		}
		defer home.Close()
		target, err := os.Open("/run/netns/" + name)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		err = fn()
		// A thread whose namespace could not be restored ends with its goroutine.
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
