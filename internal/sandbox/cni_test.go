package sandbox

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

func TestPodCIDRRanges(t *testing.T) {
	for _, tt := range []struct {
		cidr, shared, serverless string
		err                      string
	}{
		{cidr: "10.42.0.0/16", shared: "10.42.0.0/17", serverless: "10.42.128.0/17"},
		{cidr: "10.249.7.0/16", shared: "10.249.0.0/17", serverless: "10.249.128.0/17"},
		{cidr: "192.168.1.0/24", shared: "192.168.1.0/25", serverless: "192.168.1.128/25"},
		{cidr: "10.0.0.0/30", err: "too small"},
	} {
		t.Run(tt.cidr, func(t *testing.T) {
			p := netip.MustParsePrefix(tt.cidr)
			shared, err := SharedRange(p)
			serverless, err2 := ServerlessRange(p)
			if tt.err != "" {
				if err == nil || err2 == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, %v, want errors with %q", err, err2, tt.err)
				}
				return
			}
			if err != nil || err2 != nil {
				t.Fatal(err, err2)
			}
			if shared.String() != tt.shared || serverless.String() != tt.serverless {
				t.Errorf("got %s and %s, want %s and %s", shared, serverless, tt.shared, tt.serverless)
			}
			if shared.Overlaps(serverless) {
				t.Errorf("%s and %s overlap", shared, serverless)
			}
		})
	}
}

func TestLastAddr(t *testing.T) {
	for cidr, want := range map[string]string{
		"10.42.0.0/17":   "10.42.127.255",
		"10.42.128.0/17": "10.42.255.255",
		"10.1.2.3/32":    "10.1.2.3",
	} {
		if got := LastAddr(netip.MustParsePrefix(cidr)).String(); got != want {
			t.Errorf("LastAddr(%s) = %s, want %s", cidr, got, want)
		}
	}
}

func TestStaticBridgeRefusesAddressesOutsideTheServerlessRange(t *testing.T) {
	n, err := newNetwork(Options{PodCIDR: "10.42.0.0/16", Bridge: "gantry-x"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"10.42.0.5", "10.43.128.5", "10.42.255.255"} {
		if _, err := n.staticBridge(net.ParseIP(ip)); err == nil || !strings.Contains(err.Error(), "outside") {
			t.Errorf("%s: got %v, want a refusal naming the range", ip, err)
		}
	}
	conf, err := n.staticBridge(net.ParseIP("10.42.128.5"))
	if err != nil {
		t.Fatal(err)
	}
	got := string(conf.Bytes)
	for _, want := range []string{`"type":"static"`, `"address":"10.42.128.5/16"`, `"gateway":"10.42.0.1"`, `"bridge":"gantry-x"`} {
		if !strings.Contains(got, want) {
			t.Errorf("static configuration %s lacks %s", got, want)
		}
	}
	if !strings.Contains(string(n.bridge.Bytes), `"rangeEnd":"10.42.127.255"`) {
		t.Errorf("host-local configuration %s does not end at the shared range's end", n.bridge.Bytes)
	}
}

// NoMasquerade (gantry server and agent: podnet masquerades what leaves the cluster's range)
// turns the bridge plugin's masquerade off; without it the plugin masquerades.
func TestBridgeMasqueradeFollowsNoMasquerade(t *testing.T) {
	for _, tc := range []struct {
		no   bool
		want string
	}{{false, `"ipMasq":true`}, {true, `"ipMasq":false`}} {
		n, err := newNetwork(Options{PodCIDR: "10.224.1.0/24", Bridge: "gantry-x", NoMasquerade: tc.no}, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		static, err := n.staticBridge(net.ParseIP("10.224.1.200"))
		if err != nil {
			t.Fatal(err)
		}
		for _, conf := range []string{string(n.bridge.Bytes), string(static.Bytes)} {
			if !strings.Contains(conf, tc.want) {
				t.Errorf("NoMasquerade %t: configuration %s lacks %s", tc.no, conf, tc.want)
			}
		}
	}
}

// A sandbox attached with the bridge plugin's masquerade (by an older gantry, or before an
// overlay was configured) and removed by a manager without it leaves no rules behind: the
// removal undoes what the add did, from libcni's cache.
func TestRemoveUndoesTheMasqueradeTheSandboxWasMadeWith(t *testing.T) {
	opts := testOptions(t)
	ctx := context.Background()
	masq := newTestManager(t, opts)
	sb, err := masq.CreateSandbox(ctx, PodSpec{ID: "masq", Name: "masq"})
	if err != nil {
		t.Fatal(err)
	}
	rules := func() string {
		out, err := exec.Command("iptables", "-t", "nat", "-S").CombinedOutput()
		if err != nil {
			t.Fatalf("iptables: %v\n%s", err, out)
		}
		return string(out)
	}
	comment := `id: \"masq\"`
	if !strings.Contains(rules(), comment) {
		t.Fatalf("no masquerade rule of the pod at %s after its sandbox was made:\n%s", sb.IP, rules())
	}
	opts.NoMasquerade = true
	plain := newTestManager(t, opts)
	if err := plain.RemoveSandbox(ctx, "masq"); err != nil {
		t.Fatal(err)
	}
	if got := rules(); strings.Contains(got, comment) {
		t.Errorf("the pod's masquerade rules outlived its sandbox:\n%s", got)
	}
}
