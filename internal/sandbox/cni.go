package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// cniVersion is the CNI spec version of the generated configurations; Debian 12's
// containernetworking-plugins (1.1.1) speak up to 1.0.0.
const cniVersion = "1.0.0"

// network attaches pods to the bridge through CNI: the loopback plugin brings up lo, the
// bridge plugin makes a veth pair into the bridge and host-local hands out the address from
// the lower half of the pod CIDR (SharedRange). A pod whose address was chosen before it was
// placed (a serverless pod, named after it) gets exactly that address from the static IPAM
// plugin instead: the upper half (ServerlessRange) is kept for those, so the two never meet.
type network struct {
	cni      *libcni.CNIConfig
	loopback *libcni.NetworkConfigList
	bridge   *libcni.NetworkConfigList
	// bridgeConf is the bridge plugin's configuration without its ipam; podCIDR and gateway
	// complete the static configurations of requested addresses.
	bridgeConf map[string]any
	podCIDR    netip.Prefix
	gateway    netip.Addr
}

func newNetwork(opts Options, stateDir string) (*network, error) {
	lo, err := json.Marshal(map[string]any{
		"cniVersion": cniVersion,
		"name":       "gantry-loopback",
		"plugins":    []any{map[string]any{"type": "loopback"}},
	})
	if err != nil {
		return nil, err
	}
	cidr, err := netip.ParsePrefix(opts.PodCIDR)
	if err != nil {
		return nil, fmt.Errorf("pod CIDR %q: %w", opts.PodCIDR, err)
	}
	cidr = cidr.Masked()
	shared, err := SharedRange(cidr)
	if err != nil {
		return nil, err
	}
	bridgeConf := map[string]any{
		"type":        "bridge",
		"bridge":      opts.Bridge,
		"isGateway":   true,
		"ipMasq":      !opts.NoMasquerade,
		"hairpinMode": true,
	}
	hostLocal := maps.Clone(bridgeConf)
	hostLocal["ipam"] = map[string]any{
		"type": "host-local",
		"ranges": [][]map[string]string{{{
			"subnet":   cidr.String(),
			"rangeEnd": LastAddr(shared).String(),
		}}},
		"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
		"dataDir": filepath.Join(stateDir, "networks"),
	}
	br, err := json.Marshal(map[string]any{
		"cniVersion": cniVersion,
		"name":       "gantry",
		"plugins":    []any{hostLocal},
	})
	if err != nil {
		return nil, err
	}
	n := &network{cni: libcni.NewCNIConfigWithCacheDir(opts.CNIBinDirs, filepath.Join(stateDir, "cache"), nil),
		bridgeConf: bridgeConf, podCIDR: cidr, gateway: cidr.Addr().Next()}
	if n.loopback, err = libcni.NetworkConfFromBytes(lo); err != nil {
		return nil, fmt.Errorf("loopback network config: %w", err)
	}
	if n.bridge, err = libcni.NetworkConfFromBytes(br); err != nil {
		return nil, fmt.Errorf("bridge network config: %w", err)
	}
	return n, nil
}

// staticBridge is the bridge network that gives the pod exactly ip, from ServerlessRange.
func (n *network) staticBridge(ip net.IP) (*libcni.NetworkConfigList, error) {
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return nil, fmt.Errorf("requested IP %v is not an address", ip)
	}
	addr = addr.Unmap()
	serverless, err := ServerlessRange(n.podCIDR)
	if err != nil {
		return nil, err
	}
	if !serverless.Contains(addr) || addr == LastAddr(n.podCIDR) {
		return nil, fmt.Errorf("requested IP %s is outside the range kept for requested addresses, %s", addr, serverless)
	}
	conf := maps.Clone(n.bridgeConf)
	conf["ipam"] = map[string]any{
		"type": "static",
		"addresses": []map[string]string{{
			"address": netip.PrefixFrom(addr, n.podCIDR.Bits()).String(),
			"gateway": n.gateway.String(),
		}},
		"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
	}
	b, err := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": "gantry", "plugins": []any{conf}})
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(b)
}

// add attaches the network namespace at netns and returns the pod's IP: requested when it
// is set (from ServerlessRange), else one host-local hands out (from SharedRange).
func (n *network) add(ctx context.Context, id, netns string, requested net.IP) (net.IP, error) {
	ctx, cancel := withTimeout(ctx, cniTimeout)
	defer cancel()
	bridge := n.bridge
	if requested != nil {
		var err error
		if bridge, err = n.staticBridge(requested); err != nil {
			return nil, fmt.Errorf("cni add bridge: %w", err)
		}
	}
	if _, err := n.cni.AddNetworkList(ctx, n.loopback, &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: "lo"}); err != nil {
		return nil, fmt.Errorf("cni add loopback: %w", err)
	}
	res, err := n.cni.AddNetworkList(ctx, bridge, &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: "eth0"})
	if err != nil {
		return nil, fmt.Errorf("cni add bridge: %w", err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("cni add bridge: reading result: %w", err)
	}
	for _, ip := range r.IPs {
		if ip.Address.IP.To4() != nil {
			return ip.Address.IP.To4(), nil
		}
	}
	if len(r.IPs) > 0 {
		return r.IPs[0].Address.IP, nil
	}
	return nil, fmt.Errorf("cni add bridge: the result has no IP address")
}

// del detaches the pod and releases its address. netns may be "" when the namespace is
// already gone (after a reboot): the plugins then only release what they hold on the host.
// It serves a pod with a requested address too: host-local then holds nothing of it, and
// the bridge plugin removes the veth and masquerade rules alike.
func (n *network) del(ctx context.Context, id, netns string) error {
	ctx, cancel := withTimeout(ctx, cniTimeout)
	defer cancel()
	rt := &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: "eth0"}
	if err := n.cni.DelNetworkList(ctx, n.attachedWith(rt), rt); err != nil {
		return fmt.Errorf("cni del bridge: %w", err)
	}
	if err := n.cni.DelNetworkList(ctx, n.loopback, &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: "lo"}); err != nil {
		return fmt.Errorf("cni del loopback: %w", err)
	}
	return nil
}

// attachedWith is the bridge network the pod of rt was attached with, as libcni cached it at
// the add, so that the plugins undo what they did (the masquerade rules of a sandbox made
// before Options.NoMasquerade changed, by an older gantry); the current one when nothing
// was cached.
func (n *network) attachedWith(rt *libcni.RuntimeConf) *libcni.NetworkConfigList {
	cached, _, err := n.cni.GetNetworkListCachedConfig(n.bridge, rt)
	if err != nil || len(cached) == 0 {
		return n.bridge
	}
	list, err := libcni.NetworkConfFromBytes(cached)
	if err != nil {
		return n.bridge
	}
	return list
}

// SharedRange is the part of the pod CIDR host-local hands addresses out of: its lower half.
// The upper half is ServerlessRange's.
func SharedRange(podCIDR netip.Prefix) (netip.Prefix, error) {
	if podCIDR.Bits() >= podCIDR.Addr().BitLen()-2 {
		return netip.Prefix{}, fmt.Errorf("pod CIDR %s is too small to split into a shared and a serverless range", podCIDR)
	}
	return netip.PrefixFrom(podCIDR.Masked().Addr(), podCIDR.Bits()+1), nil
}

// ServerlessRange is the part of the pod CIDR kept for pods whose address is chosen before
// they are placed (Manager.CreateSandbox with PodSpec.IP): its upper half, less its last
// address (the pod CIDR's broadcast address).
func ServerlessRange(podCIDR netip.Prefix) (netip.Prefix, error) {
	shared, err := SharedRange(podCIDR)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(LastAddr(shared).Next(), shared.Bits()), nil
}

// lastAddr is the last address of p.
func LastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
