package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// cniVersion is the CNI spec version of the generated configurations; Debian 12's
// containernetworking-plugins (1.1.1) speak up to 1.0.0.
const cniVersion = "1.0.0"

// network attaches pods to the bridge through CNI: the loopback plugin brings up lo, the
// bridge plugin makes a veth pair into the bridge and host-local hands out the address.
type network struct {
	cni      *libcni.CNIConfig
	loopback *libcni.NetworkConfigList
	bridge   *libcni.NetworkConfigList
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
	br, err := json.Marshal(map[string]any{
		"cniVersion": cniVersion,
		"name":       "gantry",
		"plugins": []any{map[string]any{
			"type":        "bridge",
			"bridge":      opts.Bridge,
			"isGateway":   true,
			"ipMasq":      true,
			"hairpinMode": true,
			"ipam": map[string]any{
				"type":    "host-local",
				"ranges":  [][]map[string]string{{{"subnet": opts.PodCIDR}}},
				"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
				"dataDir": filepath.Join(stateDir, "networks"),
			},
		}},
	})
	if err != nil {
		return nil, err
	}
	n := &network{cni: libcni.NewCNIConfigWithCacheDir(opts.CNIBinDirs, filepath.Join(stateDir, "cache"), nil)}
	if n.loopback, err = libcni.NetworkConfFromBytes(lo); err != nil {
		return nil, fmt.Errorf("loopback network config: %w", err)
	}
	if n.bridge, err = libcni.NetworkConfFromBytes(br); err != nil {
		return nil, fmt.Errorf("bridge network config: %w", err)
	}
	return n, nil
}

// add attaches the network namespace at netns and returns the pod's IP.
func (n *network) add(ctx context.Context, id, netns string) (net.IP, error) {
	ctx, cancel := withTimeout(ctx, cniTimeout)
	defer cancel()
	if _, err := n.cni.AddNetworkList(ctx, n.loopback, &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: "lo"}); err != nil {
		return nil, fmt.Errorf("cni add loopback: %w", err)
	}
	res, err := n.cni.AddNetworkList(ctx, n.bridge, &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: "eth0"})
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
func (n *network) del(ctx context.Context, id, netns string) error {
	ctx, cancel := withTimeout(ctx, cniTimeout)
	defer cancel()
	if err := n.cni.DelNetworkList(ctx, n.bridge, &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: "eth0"}); err != nil {
		return fmt.Errorf("cni del bridge: %w", err)
	}
	if err := n.cni.DelNetworkList(ctx, n.loopback, &libcni.RuntimeConf{ContainerID: id, NetNS: netns, IfName: "lo"}); err != nil {
		return fmt.Errorf("cni del loopback: %w", err)
	}
	return nil
}
