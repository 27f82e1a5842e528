// Package procroute reads Linux's IPv4 routing table as /proc/net/route shows it (in the
// network namespace of the process that reads it).
package procroute

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strings"
)

// File is the routing table of the reading process's network namespace.
const File = "/proc/net/route"

// Route is one line of the table.
type Route struct {
	Iface string
	// Dst is the destination network, Mask its mask; a zero mask is the default route.
	Dst, Gateway net.IP
	Mask         net.IPMask
}

// Default says whether r is a default route.
func (r Route) Default() bool {
	ones, _ := r.Mask.Size()
	return ones == 0
}

// Read reads the routing table file (File, or a copy of its format). Lines it cannot read are
// skipped.
func Read(file string) ([]Route, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var routes []Route
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 {
			continue
		}
		dst, err1 := Addr(fields[1])
		gw, err2 := Addr(fields[2])
		mask, err3 := Addr(fields[7])
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		routes = append(routes, Route{Iface: fields[0], Dst: dst, Gateway: gw, Mask: net.IPMask(mask)})
	}
	return routes, sc.Err()
}

// DefaultGateway is the gateway of the first default route through a gateway in file, nil
// when there is none.
func DefaultGateway(file string) (net.IP, error) {
	routes, err := Read(file)
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		if r.Default() && !r.Gateway.IsUnspecified() {
			return r.Gateway, nil
		}
	}
	return nil, nil
}

// Addr reads an address of the table: 8 hex digits, the value of the address's four bytes
// (in network order) read as a number in the machine's own byte order.
func Addr(s string) (net.IP, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 4 {
		return nil, fmt.Errorf("bad route address %q", s)
	}
	ip := make(net.IP, 4)
	binary.NativeEndian.PutUint32(ip, binary.BigEndian.Uint32(b))
	return ip, nil
}
