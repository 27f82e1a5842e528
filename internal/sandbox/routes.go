package sandbox

import (
	"fmt"
	"net"

	"github.com/gantry-run/gantry/internal/procroute"
)

// checkPodCIDR refuses a pod range that overlaps a route the host already has through
// another interface than the pods' bridge (the default route aside): pods would then shadow,
// or be shadowed by, a network the host uses.
func checkPodCIDR(cidr, bridge string) error {
	_, pods, err := net.ParseCIDR(cidr)
	if err != nil {
		return err
	}
	if pods.IP.To4() == nil {
		return nil // /proc/net/route lists IPv4 only
	}
	routes, err := procroute.Read(procroute.File)
	if err != nil {
		return nil // no IPv4 routing table to check against
	}
	for _, r := range routes {
		if r.Iface == bridge || r.Default() {
			continue
		}
		route := &net.IPNet{IP: r.Dst, Mask: r.Mask}
		if route.Contains(pods.IP) || pods.Contains(route.IP) {
			return fmt.Errorf("pod CIDR %s overlaps the host's route to %s via %s; choose another range", cidr, route, r.Iface)
		}
	}
	return nil
}
