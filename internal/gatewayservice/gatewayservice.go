// Package gatewayservice gives the servers' gateways one ClusterIP, so that pods on every node
// reach them, as Knative's cluster-local gateway sits behind a Service: the Service
// kube-system/gantry-gateway (no selector) and its EndpointSlice, whose endpoints are each
// live server's gateway on its address in the pod network (its pods' bridge, which every node
// reaches over the overlay).
//
// Each server holds a Lease kube-system/gantry-gateway-<node> naming its address and renews it;
// every server writes the EndpointSlice from the Leases that have not expired, as the API
// server's lease endpoint reconciler writes the "kubernetes" Service's endpoints. A server
// that stops removes its Lease and its endpoint; one that dies drops out once its Lease
// expires (LeaseDuration, then at most one RenewInterval).
package gatewayservice

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// The Service's names and the labels of what this package writes.
const (
	// Name is the Service, and the EndpointSlice, in Namespace.
	Name      = "gantry-gateway"
	Namespace = metav1.NamespaceSystem
	// LeaseLabel marks the servers' Leases; AddressAnnotation holds each one's address.
	LeaseLabel        = "gantry.dev/gateway-endpoint"
	AddressAnnotation = "gantry.dev/gateway-address"
	// ManagedBy is the EndpointSlice's endpointslice.kubernetes.io/managed-by: the
	// controller-manager's EndpointSlice controllers leave slices of other managers alone.
	ManagedBy = "gateway.gantry.dev"
	// PortName is the Service's one port.
	PortName = "http"
)

// Key is the Service's key.
var Key = types.NamespacedName{Namespace: Namespace, Name: Name}

// Timing of the Leases.
const (
	LeaseDuration = 30 * time.Second
	RenewInterval = 10 * time.Second
	// callTimeout bounds each round of API calls.
	callTimeout = 10 * time.Second
)

// Endpoint is one server's gateway.
type Endpoint struct {
	Node    string
	Address netip.Addr
}

// LiveEndpoints are the endpoints of the Leases that have not expired at now, one per address
// (the newest Lease wins), sorted by address. A Lease without a valid address, renew time or
// duration is left out.
func LiveEndpoints(leases []coordinationv1.Lease, now time.Time) []Endpoint {
	byAddr := map[netip.Addr]struct {
		ep      Endpoint
		renewed time.Time
	}{}
	for i := range leases {
		l := &leases[i]
		if l.DeletionTimestamp != nil || l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
			continue
		}
		addr, err := netip.ParseAddr(l.Annotations[AddressAnnotation])
		if err != nil {
			continue
		}
		renewed := l.Spec.RenewTime.Time
		if !now.Before(renewed.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second)) {
			continue
		}
		if prev, ok := byAddr[addr]; ok && !renewed.After(prev.renewed) {
			continue
		}
		byAddr[addr] = struct {
			ep      Endpoint
			renewed time.Time
		}{Endpoint{Node: ptr.Deref(l.Spec.HolderIdentity, ""), Address: addr}, renewed}
	}
	out := make([]Endpoint, 0, len(byAddr))
	for _, e := range byAddr {
		out = append(out, e.ep)
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return a.Address.Compare(b.Address) })
	return out
}

// MakeService is the Service: a ClusterIP without a selector, port 80 to the gateways' port.
func MakeService(port int32) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: Namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "gantry"}},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP,
			Ports: []corev1.ServicePort{{
				Name: PortName, Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(port),
			}},
		},
	}
}

// MakeEndpointSlice is the Service's EndpointSlice with eps, every one ready.
func MakeEndpointSlice(eps []Endpoint, port int32) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: Namespace, Labels: map[string]string{
			discoveryv1.LabelServiceName: Name,
			discoveryv1.LabelManagedBy:   ManagedBy,
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(PortName), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To(port)}},
		Endpoints:   []discoveryv1.Endpoint{},
	}
	for _, e := range eps {
		if e.Address.Is6() {
			es.AddressType = discoveryv1.AddressTypeIPv6
		}
		ep := discoveryv1.Endpoint{Addresses: []string{e.Address.String()}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}
		if e.Node != "" {
			ep.NodeName = ptr.To(e.Node)
		}
		es.Endpoints = append(es.Endpoints, ep)
	}
	return es
}

// sameEndpoints reports whether two slices carry the same addresses, ports and nodes.
func sameEndpoints(a, b *discoveryv1.EndpointSlice) bool {
	if a.AddressType != b.AddressType || len(a.Endpoints) != len(b.Endpoints) || len(a.Ports) != len(b.Ports) {
		return false
	}
	for i := range a.Ports {
		if ptr.Deref(a.Ports[i].Port, 0) != ptr.Deref(b.Ports[i].Port, 0) || ptr.Deref(a.Ports[i].Name, "") != ptr.Deref(b.Ports[i].Name, "") {
			return false
		}
	}
	for i := range a.Endpoints {
		x, y := a.Endpoints[i], b.Endpoints[i]
		if !slices.Equal(x.Addresses, y.Addresses) || ptr.Deref(x.NodeName, "") != ptr.Deref(y.NodeName, "") ||
			ptr.Deref(x.Conditions.Ready, false) != ptr.Deref(y.Conditions.Ready, false) {
			return false
		}
	}
	return a.Labels[discoveryv1.LabelServiceName] == Name && a.Labels[discoveryv1.LabelManagedBy] == ManagedBy
}

// Options configure a Publisher.
type Options struct {
	Client kubernetes.Interface
	// Node names this server's node: its Lease is gantry-gateway-<Node>.
	Node string
	// Address is this server's gateway in the pod network (its pods' bridge address).
	Address netip.Addr
	// Port is the gateway's port there.
	Port   int32
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Publisher keeps this server's endpoint in the Service.
type Publisher struct {
	opts Options
	log  *slog.Logger
}

// New returns a Publisher; Start runs it.
func New(opts Options) (*Publisher, error) {
	if opts.Client == nil || opts.Node == "" || !opts.Address.IsValid() || opts.Port <= 0 {
		return nil, errors.New("gateway service: a client, a node name, an address and a port are needed")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Publisher{opts: opts, log: opts.Logger.With("component", "gateway-service")}, nil
}

// LeaseName is the Lease of node's gateway.
func LeaseName(node string) string { return Name + "-" + node }

// Start renews this server's Lease and writes the EndpointSlice every RenewInterval until ctx
// ends; then it removes its Lease and its endpoint. API errors are logged and retried: the
// gateway serves without the Service, only pods on other nodes miss it.
func (p *Publisher) Start(ctx context.Context) error {
	t := time.NewTicker(RenewInterval)
	defer t.Stop()
	for {
		if err := p.Sync(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("publishing the gateway's endpoint", "err", err)
		}
		select {
		case <-ctx.Done():
			stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
			defer cancel()
			if err := p.Withdraw(stop); err != nil {
				p.log.Warn("withdrawing the gateway's endpoint", "err", err)
			}
			return nil
		case <-t.C:
		}
	}
}

// Sync renews this server's Lease, makes sure the Service exists, and writes the EndpointSlice
// from the live Leases (removing the expired ones).
func (p *Publisher) Sync(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := p.renew(ctx); err != nil {
		return fmt.Errorf("lease %s/%s: %w", Namespace, LeaseName(p.opts.Node), err)
	}
	if err := p.ensureService(ctx); err != nil {
		return fmt.Errorf("service %s: %w", Key, err)
	}
	return p.writeSlice(ctx, "")
}

// Withdraw removes this server's Lease and its endpoint.
func (p *Publisher) Withdraw(ctx context.Context) error {
	err := p.opts.Client.CoordinationV1().Leases(Namespace).Delete(ctx, LeaseName(p.opts.Node), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return p.writeSlice(ctx, LeaseName(p.opts.Node))
}

func (p *Publisher) renew(ctx context.Context) error {
	leases := p.opts.Client.CoordinationV1().Leases(Namespace)
	now := metav1.NewMicroTime(p.opts.Now())
	spec := coordinationv1.LeaseSpec{
		HolderIdentity:       ptr.To(p.opts.Node),
		LeaseDurationSeconds: ptr.To(int32(LeaseDuration / time.Second)),
		RenewTime:            &now,
	}
	l, err := leases.Get(ctx, LeaseName(p.opts.Node), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name: LeaseName(p.opts.Node), Namespace: Namespace,
				Labels:      map[string]string{LeaseLabel: "true"},
				Annotations: map[string]string{AddressAnnotation: p.opts.Address.String()},
			},
			Spec: spec,
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	if l.Labels == nil {
		l.Labels = map[string]string{}
	}
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Labels[LeaseLabel] = "true"
	l.Annotations[AddressAnnotation] = p.opts.Address.String()
	l.Spec = spec
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}

func (p *Publisher) ensureService(ctx context.Context) error {
	svcs := p.opts.Client.CoreV1().Services(Namespace)
	want := MakeService(p.opts.Port)
	svc, err := svcs.Get(ctx, Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = svcs.Create(ctx, want, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	}
	if err != nil {
		return err
	}
	if len(svc.Spec.Selector) == 0 && len(svc.Spec.Ports) == 1 && svc.Spec.Ports[0].Port == 80 &&
		svc.Spec.Ports[0].TargetPort == want.Spec.Ports[0].TargetPort && svc.Spec.Ports[0].Name == PortName {
		return nil
	}
	svc.Spec.Selector = nil
	svc.Spec.Ports = want.Spec.Ports
	_, err = svcs.Update(ctx, svc, metav1.UpdateOptions{})
	return err
}

// writeSlice writes the EndpointSlice from the live Leases other than without, and deletes the
// expired ones (each at the version read, so a renewal in between keeps its Lease).
func (p *Publisher) writeSlice(ctx context.Context, without string) error {
	list, err := p.opts.Client.CoordinationV1().Leases(Namespace).List(ctx, metav1.ListOptions{LabelSelector: LeaseLabel + "=true"})
	if err != nil {
		return fmt.Errorf("listing the gateways' leases: %w", err)
	}
	now := p.opts.Now()
	var live []coordinationv1.Lease
	for _, l := range list.Items {
		if l.Name == without || !strings.HasPrefix(l.Name, Name+"-") {
			continue
		}
		if len(LiveEndpoints([]coordinationv1.Lease{l}, now)) == 0 {
			// Expired (or unreadable): whoever sees it first removes it.
			err := p.opts.Client.CoordinationV1().Leases(Namespace).Delete(ctx, l.Name,
				metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: ptr.To(l.ResourceVersion)}})
			if err == nil {
				p.log.Info("a gateway's lease expired: its endpoint is removed", "lease", l.Name, "address", l.Annotations[AddressAnnotation])
			}
			continue
		}
		live = append(live, l)
	}
	want := MakeEndpointSlice(LiveEndpoints(live, now), p.opts.Port)
	slicesAPI := p.opts.Client.DiscoveryV1().EndpointSlices(Namespace)
	es, err := slicesAPI.Get(ctx, Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = slicesAPI.Create(ctx, want, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil // another server wrote it; the next round compares
		}
		return err
	}
	if err != nil {
		return err
	}
	if sameEndpoints(es, want) {
		return nil
	}
	want.ResourceVersion = es.ResourceVersion
	want.Labels = mergeLabels(es.Labels, want.Labels)
	_, err = slicesAPI.Update(ctx, want, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return nil // another server wrote it meanwhile; the next round compares
	}
	return err
}

func mergeLabels(have, want map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range have {
		out[k] = v
	}
	for k, v := range want {
		out[k] = cmp.Or(v, out[k])
	}
	return out
}
