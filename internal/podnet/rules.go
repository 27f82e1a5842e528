package podnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// nftTimeout bounds one run of nft.
const nftTimeout = 30 * time.Second

// Port is a port of the pods' gateway address that pods may reach.
type Port struct {
	Proto string // "tcp" or "udp"
	Port  int
}

// Policy is what the pods of one bridge may reach beyond each other and the internet.
type Policy struct {
	// Bridge is the pods' bridge, the host's side of their network; the rules match the
	// traffic that enters the host from it.
	Bridge string
	// PodCIDR is the pods' range; its first address is the pods' gateway on the bridge.
	PodCIDR string
	// ServiceCIDR is the ClusterIP range; its first address is the "kubernetes" Service.
	ServiceCIDR string
	// ClusterCIDR is the range of every node's pods, which the overlay joins (it holds
	// PodCIDR); empty: this node's pods only. When set, pods reach the whole range like their
	// own, with their own addresses. The rules masquerade what pods send beyond the cluster's
	// range (or beyond PodCIDR without one), in one rule for every pod: the CNI bridge
	// plugin's masquerade is off (sandbox.Options.NoMasquerade), as it would hide a pod's
	// address from pods of other nodes, and costs nine iptables runs per pod start.
	ClusterCIDR string
	// GatewayPorts are the host's servers pods may call on the gateway address (the cluster
	// DNS, the gateway for Routes); every other port of every host address is closed to them.
	GatewayPorts []Port
	// APIServerPort is the port the "kubernetes" Service's endpoint listens on: pods that call
	// the Service reach the API server on the host through it; 0 closes that too.
	APIServerPort int
	// EgressPrivate opens the private ranges of the host's network (RFC 1918, and RFC 4193
	// for IPv6) to pods; the link-local range (the cloud metadata address) stays closed.
	EgressPrivate bool
}

// Private address ranges a pod does not reach unless Policy.EgressPrivate: the host's LAN.
var (
	privateV4   = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"}
	privateV6   = []string{"fc00::/7"}
	linkLocalV4 = "169.254.0.0/16"
	linkLocalV6 = "fe80::/10"
)

// validBridge is what a bridge name may hold so that it can name an nftables table and sit
// in a quoted interface match.
var validBridge = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// TableName is the nftables table (families inet and bridge) holding bridge's pod isolation
// rules: one per bridge, so servers with their own bridges keep their own rules.
func TableName(bridge string) string { return "gantry-pods-" + bridge }

// Ruleset is the nft script that replaces bridge's isolation tables with the rules of p. It
// creates, empties and deletes each table before writing it, so applying it is idempotent
// and atomic (nft -f applies a script as one transaction).
//
// Traffic from pods (entering through the bridge) is filtered at three hooks:
//   - prerouting: a pod cannot send from an address outside the pod range, nor from the
//     gateway's;
//   - input (to any address of the host): only replies, the gateway ports, and the API
//     server reached through the "kubernetes" Service are accepted; the rest is rejected;
//   - forward (routed elsewhere): the pod and Service ranges are accepted, the link-local
//     range and (unless EgressPrivate) the private ranges are rejected, the rest (the
//     internet) is accepted, and masqueraded on its way out (postrouting).
//
// A bridge-family table drops frames from pods that claim the gateway's address (in ARP or
// as an IP source), so no pod can take the gateway's place for the others.
func Ruleset(p Policy) (string, error) {
	if !validBridge.MatchString(p.Bridge) {
		return "", fmt.Errorf("bridge %q: only letters, digits, '.', '_' and '-' may name a bridge", p.Bridge)
	}
	gw, err := GatewayIP(p.PodCIDR)
	if err != nil {
		return "", err
	}
	_, pods, _ := net.ParseCIDR(p.PodCIDR)
	_, svcs, err := net.ParseCIDR(p.ServiceCIDR)
	if err != nil {
		return "", fmt.Errorf("service CIDR %q: %w", p.ServiceCIDR, err)
	}
	v4 := gw.To4() != nil
	if (svcs.IP.To4() != nil) != v4 {
		return "", fmt.Errorf("service CIDR %s and pod CIDR %s: one family for both", svcs, pods)
	}
	kubernetes, err := GatewayIP(p.ServiceCIDR)
	if err != nil {
		return "", err
	}
	cluster := pods
	if p.ClusterCIDR != "" {
		_, c, err := net.ParseCIDR(p.ClusterCIDR)
		if err != nil {
			return "", fmt.Errorf("cluster CIDR %q: %w", p.ClusterCIDR, err)
		}
		if (c.IP.To4() != nil) != v4 {
			return "", fmt.Errorf("cluster CIDR %s and pod CIDR %s: one family for both", c, pods)
		}
		if !c.Contains(pods.IP) || bitsOf(c) > bitsOf(pods) {
			return "", fmt.Errorf("pod CIDR %s is not inside cluster CIDR %s", pods, c)
		}
		cluster = c
	}
	ipf, icmp, private, linkLocal := "ip", "icmp", privateV4, linkLocalV4
	if !v4 {
		ipf, icmp, private, linkLocal = "ip6", "icmpv6", privateV6, linkLocalV6
	}
	table := TableName(p.Bridge)
	from := fmt.Sprintf("iifname %q", p.Bridge)
	reject := "reject with icmpx admin-prohibited"

	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	for _, family := range []string{"inet", "bridge"} {
		// add + delete: a script that deletes a table that is not there fails.
		line("add table %s %s", family, table)
		line("delete table %s %s", family, table)
	}
	line("table inet %s {", table)
	line("\tchain prerouting {")
	line("\t\ttype filter hook prerouting priority raw - 10; policy accept;")
	if v4 {
		line("\t\t%s %s saddr != %s drop", from, ipf, pods)
	} else {
		// Neighbour discovery speaks from link-local addresses.
		line("\t\t%s %s saddr != { %s, %s } drop", from, ipf, pods, linkLocal)
	}
	line("\t\t%s %s saddr %s drop", from, ipf, gw)
	line("\t}")
	line("\tchain input {")
	line("\t\ttype filter hook input priority filter; policy accept;")
	line("\t\t%s ct state established,related accept", from)
	for _, port := range p.GatewayPorts {
		line("\t\t%s %s daddr %s %s dport %d accept", from, ipf, gw, port.Proto, port.Port)
	}
	line("\t\t%s %s daddr %s %s type echo-request accept", from, ipf, gw, icmp)
	if !v4 {
		// IPv6's ARP: without it a pod does not find the gateway.
		line("\t\t%s icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit } accept", from)
	}
	if p.APIServerPort != 0 {
		line("\t\t%s ct status dnat ct original %s daddr %s tcp dport %d accept", from, ipf, kubernetes, p.APIServerPort)
	}
	line("\t\t%s %s", from, reject)
	line("\t}")
	line("\tchain forward {")
	line("\t\ttype filter hook forward priority filter; policy accept;")
	line("\t\t%s ct state established,related accept", from)
	line("\t\t%s %s daddr { %s, %s } accept", from, ipf, cluster, svcs)
	closed := []string{linkLocal}
	if !p.EgressPrivate {
		closed = append(closed, private...)
	}
	line("\t\t%s %s daddr { %s } %s", from, ipf, strings.Join(closed, ", "), reject)
	line("\t}")
	multicast := "224.0.0.0/4"
	if !v4 {
		multicast = "ff00::/8"
	}
	line("\tchain postrouting {")
	line("\t\ttype nat hook postrouting priority srcnat; policy accept;")
	line("\t\t%s saddr %s %s daddr != { %s, %s } masquerade", ipf, pods, ipf, cluster, multicast)
	line("\t}")
	line("}")
	line("table bridge %s {", table)
	line("\tchain prerouting {")
	line("\t\ttype filter hook prerouting priority filter; policy accept;")
	if v4 {
		line("\t\tarp saddr ip %s drop", gw)
	}
	line("\t\t%s saddr %s drop", ipf, gw)
	line("\t}")
	line("}")
	return b.String(), nil
}

func bitsOf(n *net.IPNet) int {
	ones, _ := n.Mask.Size()
	return ones
}

// ApplyRules writes the rules of p, replacing what an earlier start wrote.
func ApplyRules(ctx context.Context, p Policy) error {
	script, err := Ruleset(p)
	if err != nil {
		return err
	}
	if err := nft(ctx, script); err != nil {
		return fmt.Errorf("pod isolation rules (nftables table %s): %w", TableName(p.Bridge), err)
	}
	return nil
}

// RemoveRules deletes bridge's isolation tables; tables that are not there are no error.
func RemoveRules(ctx context.Context, bridge string) error {
	if !validBridge.MatchString(bridge) {
		return fmt.Errorf("bridge %q: only letters, digits, '.', '_' and '-' may name a bridge", bridge)
	}
	if err := RemoveTables(ctx, "inet "+TableName(bridge), "bridge "+TableName(bridge)); err != nil {
		return fmt.Errorf("removing pod isolation rules (nftables table %s): %w", TableName(bridge), err)
	}
	return nil
}

// RemoveTables deletes nftables tables, each named with its family ("inet gantry-pods-x"),
// in one transaction; a table that does not exist is no error.
func RemoveTables(ctx context.Context, tables ...string) error {
	var script strings.Builder
	for _, t := range tables {
		// Adding first makes the delete succeed whether or not the table was there.
		fmt.Fprintf(&script, "add table %s\ndelete table %s\n", t, t)
	}
	return nft(ctx, script.String())
}

// nft runs an nft script as one transaction.
func nft(ctx context.Context, script string) error {
	if _, err := exec.LookPath("nft"); err != nil {
		return fmt.Errorf("the nft binary is needed (apt-get install nftables; hack/install-deps.sh installs it): %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, nftTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("nft: %s", bytes.TrimSpace(out))
		}
		return fmt.Errorf("nft: %w", err)
	}
	return nil
}
