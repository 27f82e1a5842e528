package gateway

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestPodAddresses(t *testing.T) {
	p, err := NewPodAddresses([]string{"10.224.0.0/14"}, netip.MustParseAddr("10.224.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	p.SetNode("gantry", []string{"10.224.0.0/20"})
	p.SetNode("agent-a", []string{"10.224.16.0/24"})
	for _, tc := range []struct {
		addr string
		pod  bool
	}{
		{"10.224.0.5", true},   // a pod of the server's node
		{"10.224.1.0", true},   // inside the server's /20: a pod, not a block's first address
		{"10.224.16.7", true},  // a pod on an agent
		{"10.224.16.0", false}, // the agent's flannel device: its host network
		{"10.224.16.1", false}, // the agent's bridge
		{"10.224.0.0", false},  // the server's flannel device
		{"10.224.0.1", false},  // the server's bridge (also excluded up front)
		{"127.0.0.1", false},   // the host
		{"10.228.0.2", false},  // a machine's LAN address
		{"::ffff:10.224.16.7", true},
	} {
		if got := p.IsPod(netip.MustParseAddr(tc.addr)); got != tc.pod {
			t.Errorf("IsPod(%s) = %v, want %v", tc.addr, got, tc.pod)
		}
	}
	// An agent without the overlay, on the server's machine: its range is its Node's.
	p.SetNode("agent-b", []string{"10.241.0.0/16"})
	for addr, want := range map[string]bool{"10.241.0.9": true, "10.241.0.1": false, "10.241.0.0": false} {
		if got := p.IsPod(netip.MustParseAddr(addr)); got != want {
			t.Errorf("IsPod(%s) = %v, want %v", addr, got, want)
		}
	}
	p.DeleteNode("agent-b")
	if p.IsPod(netip.MustParseAddr("10.241.0.9")) {
		t.Error("a deleted Node's range is still the pods'")
	}
	p.DeleteNode("agent-a")
	if !p.IsPod(netip.MustParseAddr("10.224.16.1")) {
		t.Error("a deleted Node's address is still a node's")
	}
	// Until the Nodes are listed, nothing in the network is a pod.
	p.synced = func() bool { return false }
	if p.IsPod(netip.MustParseAddr("10.224.0.5")) {
		t.Error("a pod before the Nodes are known")
	}
	if _, err := NewPodAddresses([]string{"10.224.0.0"}); err == nil {
		t.Error("a network without a mask is accepted")
	}
}

func TestListenerFromPods(t *testing.T) {
	pods := func(a netip.Addr) bool { return a == netip.MustParseAddr("10.224.16.7") }
	for _, tc := range []struct {
		l      Listener
		remote string
		want   bool
	}{
		{Listener{}, "10.224.16.7:4000", false},
		{Listener{FromPods: true}, "10.224.16.0:4000", true},
		{Listener{FromPods: true, Pods: pods}, "10.224.16.7:4000", true},
		{Listener{FromPods: true, Pods: pods}, "10.224.16.0:4000", false},
		{Listener{FromPods: true, Pods: pods}, "garbage", false},
	} {
		r := &http.Request{RemoteAddr: tc.remote}
		if got := tc.l.fromPods(r); got != tc.want {
			t.Errorf("%+v from %s: %v, want %v", tc.l.FromPods, tc.remote, got, tc.want)
		}
	}
}
