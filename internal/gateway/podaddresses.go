package gateway

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// PodAddresses tells the pods' addresses from the nodes' own in the pod network. A request to
// the gateway's pods' side is from a pod when its source lies in the pod network (every
// node's pods with the overlay, and each Node's spec.podCIDRs) and is not a node's own address
// there: the first two addresses of each Node's spec.podCIDRs, which flannel's device and the
// pods' bridge take. A node's host network reaches other nodes' pod ranges from those
// addresses (its traffic leaves through the overlay device, or is masqueraded to it), so they
// count as the host's. It is safe for concurrent use.
type PodAddresses struct {
	networks []netip.Prefix
	static   map[netip.Addr]struct{}

	mu     sync.RWMutex
	nodes  map[string]nodeRanges
	synced func() bool
}

// nodeRanges are a Node's pod ranges and its own addresses in them.
type nodeRanges struct {
	ranges []netip.Prefix
	addrs  []netip.Addr
}

// NewPodAddresses returns the pod addresses of networks (CIDRs), apart from exclude (this
// node's own addresses, known before its Node is read) and those of the Nodes once
// SetupWithManager has read them.
func NewPodAddresses(networks []string, exclude ...netip.Addr) (*PodAddresses, error) {
	p := &PodAddresses{static: map[netip.Addr]struct{}{}, nodes: map[string]nodeRanges{}}
	for _, n := range networks {
		pfx, err := netip.ParsePrefix(n)
		if err != nil {
			return nil, fmt.Errorf("pod network %q: %w", n, err)
		}
		p.networks = append(p.networks, pfx.Masked())
	}
	for _, a := range exclude {
		p.static[a.Unmap()] = struct{}{}
	}
	return p, nil
}

// NodeAddresses are a node's own addresses in its pod ranges: each range's first two.
func NodeAddresses(podCIDRs []string) []netip.Addr {
	var out []netip.Addr
	for _, c := range podCIDRs {
		pfx, err := netip.ParsePrefix(c)
		if err != nil {
			continue
		}
		first := pfx.Masked().Addr()
		out = append(out, first, first.Next())
	}
	return out
}

// SetNode records the pod ranges of the Node name.
func (p *PodAddresses) SetNode(name string, podCIDRs []string) {
	n := nodeRanges{addrs: NodeAddresses(podCIDRs)}
	for _, c := range podCIDRs {
		if pfx, err := netip.ParsePrefix(c); err == nil {
			n.ranges = append(n.ranges, pfx.Masked())
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nodes[name] = n
}

// DeleteNode forgets the Node name.
func (p *PodAddresses) DeleteNode(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.nodes, name)
}

// IsPod reports whether addr is a pod's. Until the Nodes are read (SetupWithManager), no
// address is: a node's address must never pass for a pod's.
func (p *PodAddresses) IsPod(addr netip.Addr) bool {
	addr = addr.Unmap()
	if _, ok := p.static[addr]; ok {
		return false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.synced != nil && !p.synced() {
		return false
	}
	in := slices.ContainsFunc(p.networks, func(n netip.Prefix) bool { return n.Contains(addr) })
	for _, n := range p.nodes {
		if slices.Contains(n.addrs, addr) {
			return false
		}
		in = in || slices.ContainsFunc(n.ranges, func(r netip.Prefix) bool { return r.Contains(addr) })
	}
	return in
}

// SetupWithManager keeps the Nodes' ranges from the manager's Node informer; IsPod says no
// for the pod network until it has listed them.
func (p *PodAddresses) SetupWithManager(ctx context.Context, mgr manager.Manager) error {
	inf, err := mgr.GetCache().GetInformer(ctx, &corev1.Node{})
	if err != nil {
		return fmt.Errorf("gateway: informer for Nodes: %w", err)
	}
	set := func(obj any) {
		if n, ok := obj.(*corev1.Node); ok {
			cidrs := n.Spec.PodCIDRs
			if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
				cidrs = []string{n.Spec.PodCIDR}
			}
			p.SetNode(n.Name, cidrs)
		}
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    set,
		UpdateFunc: func(_, obj any) { set(obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if n, ok := obj.(*corev1.Node); ok {
				p.DeleteNode(n.Name)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("gateway: watching Nodes: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.synced = reg.HasSynced
	return nil
}
