package podnet

import (
	"context"
	"os/exec"
	"strings"
	"testing"
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
			"ip6 saddr fd00:10::1 drop",
		},
		not: []string{"arp"},
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
		for range 2 {
			if err := RemoveRules(ctx, p.Bridge); err != nil {
				t.Fatalf("RemoveRules: %v", err)
			}
		}
		out, _ = exec.Command("nft", "list", "tables").CombinedOutput()
		if strings.Contains(string(out), TableName(p.Bridge)) {
			t.Errorf("tables left after RemoveRules:\n%s", out)
		}
	})
}
