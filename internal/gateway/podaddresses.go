package gateway

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// PodAddresses tells the pods' addresses from the nodes' own in the pod network. A request to
// the gateway's pods' side is from a pod when its source lies in the pod network (every
// node's pods with the overlay) and is not a node's own address there: the first two
// addresses of each Node's spec.podCIDRs, which flannel's device and the pods' bridge take.
// A node's host network reaches other nodes' pod ranges from those addresses (its traffic
// leaves through the overlay device, or is masqueraded to it), so they count as the host's.
// It is safe for concurrent use.
type PodAddresses struct {
	networks []netip.Prefix
	static   map[netip.Addr]struct{}

	mu     sync.RWMutex
	nodes  map[string][]netip.Addr
	synced func() bool
}

// NewPodAddresses returns the pod addresses of networks (CIDRs), apart from exclude (this
// node's own addresses, known before its Node is read) and those of the Nodes once
// SetupWithManager has read them.
func NewPodAddresses(networks []string, exclude ...netip.Addr) (*PodAddresses, error) {
	p := &PodAddresses{static: map[netip.Addr]struct{}{}, nodes: map[string][]netip.Addr{}}
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
	addrs := NodeAddresses(podCIDRs)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nodes[name] = addrs
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
	in := false
	for _, n := range p.networks {
		if n.Contains(addr) {
			in = true
			break
		}
	}
	if !in {
		return false
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.synced != nil && !p.synced() {
		return false
	}
	for _, addrs := range p.nodes {
		for _, a := range addrs {
			if a == addr {
				return false
			}
		}
	}
	return true
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
