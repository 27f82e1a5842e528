package cli

import (
	"strings"
	"testing"
)

// TestOverlayFlagsNeedAClusterCIDR: an overlay flag without --cluster-cidr is refused with its
// name, not accepted and ignored; with --cluster-cidr it passes this check.
func TestOverlayFlagsNeedAClusterCIDR(t *testing.T) {
	for _, cmd := range []string{"server", "agent"} {
		for _, args := range [][]string{{"--vxlan-vni=7"}, {"--vxlan-port=4790"}} {
			c := newServerCommand()
			if cmd == "agent" {
				c = newAgentCommand()
			}
			if err := c.ParseFlags(args); err != nil {
				t.Fatal(err)
			}
			err := refuseWithoutClusterCIDR(c, "")
			name := strings.SplitN(strings.TrimPrefix(args[0], "--"), "=", 2)[0]
			if err == nil || !strings.Contains(err.Error(), "--"+name) {
				t.Errorf("gantry %s %v without --cluster-cidr: %v; want a refusal naming --%s", cmd, args, err, name)
			}
			if err := refuseWithoutClusterCIDR(c, "10.224.0.0/14"); err != nil {
				t.Errorf("gantry %s %v with --cluster-cidr: %v", cmd, args, err)
			}
		}
	}
	c := newServerCommand()
	if err := c.ParseFlags([]string{"--node-cidr-mask-size=20"}); err != nil {
		t.Fatal(err)
	}
	if err := refuseWithoutClusterCIDR(c, ""); err == nil || !strings.Contains(err.Error(), "--node-cidr-mask-size") {
		t.Errorf("--node-cidr-mask-size without --cluster-cidr: %v", err)
	}
}

// TestAutoscalerPortNeedsACluster: --autoscaler-port on a single server is refused by name.
func TestAutoscalerPortNeedsACluster(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		refuse bool
	}{
		{[]string{"--autoscaler-port=7446"}, true},
		{[]string{"--autoscaler-port=7446", "--cluster-init"}, false},
		{[]string{"--autoscaler-port=7446", "--server=https://10.0.0.1:6443"}, false},
		{[]string{"--cluster-init"}, false},
		{nil, false},
	} {
		c := newServerCommand()
		if err := c.ParseFlags(tc.args); err != nil {
			t.Fatal(err)
		}
		err := refuseAutoscalerPortAlone(c)
		if tc.refuse != (err != nil) || (err != nil && !strings.Contains(err.Error(), "--autoscaler-port")) {
			t.Errorf("%v: %v, want a refusal: %v", tc.args, err, tc.refuse)
		}
	}
}
