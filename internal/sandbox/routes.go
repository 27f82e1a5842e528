package sandbox

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
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
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return nil // no IPv4 routing table to check against
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || fields[0] == bridge {
			continue
		}
		dst, err1 := parseRouteHex(fields[1])
		mask, err2 := parseRouteHex(fields[7])
		if err1 != nil || err2 != nil {
			continue
		}
		route := &net.IPNet{IP: dst, Mask: net.IPMask(mask)}
		if ones, _ := route.Mask.Size(); ones == 0 {
			continue // the default route
		}
		if route.Contains(pods.IP) || pods.Contains(route.IP) {
			return fmt.Errorf("pod CIDR %s overlaps the host's route to %s via %s; choose another range", cidr, route, fields[0])
		}
	}
	return nil
}

// parseRouteHex reads an address of /proc/net/route: 8 hex digits in host (little-endian)
// byte order.
func parseRouteHex(s string) (net.IP, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 4 {
		return nil, fmt.Errorf("bad route address %q", s)
	}
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, binary.LittleEndian.Uint32(b))
	return ip, nil
}
