package scheduler

import (
	"errors"
	"net/netip"

	"github.com/gantry-run/gantry/internal/sandbox"
)

// ErrNoAddress says every address of the serverless range is taken.
var ErrNoAddress = errors.New("every address of the serverless range is taken")

// addresses hands out the addresses of a range round-robin: the next free one after the
// last handed out, so an address just given back (its pod's sandbox possibly still being
// torn down) is the last to be handed out again.
type addresses struct {
	first, last netip.Addr // the range, both included
	next        netip.Addr // where the next search starts
}

// newAddresses hands out the addresses of r, less its first (a network address were r
// used alone) and its last.
func newAddresses(r netip.Prefix) addresses {
	first := r.Masked().Addr().Next()
	last := sandbox.LastAddr(r).Prev()
	return addresses{first: first, last: last, next: first}
}

// pick is the next address, from the cursor on, that used does not hold; it moves the
// cursor past it.
func (a *addresses) pick(used func(netip.Addr) bool) (netip.Addr, error) {
	if !a.first.IsValid() || a.last.Less(a.first) {
		return netip.Addr{}, ErrNoAddress
	}
	ip := a.next
	if ip.Less(a.first) || a.last.Less(ip) {
		ip = a.first
	}
	start := ip
	for {
		next := ip.Next()
		if a.last.Less(next) {
			next = a.first
		}
		if !used(ip) {
			a.next = next
			return ip, nil
		}
		ip = next
		if ip == start {
			return netip.Addr{}, ErrNoAddress
		}
	}
}
