package gatewayapi

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/reconciler/kmeta"
	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// A revision's backend is what the HTTPRoutes' backendRefs name: the Service <revision>,
// port BackendPort, without a selector, as Knative's serverless service keeps it ("public"),
// and one EndpointSlice of the same name that this package keeps. Its endpoints are the
// revision's ready pods (their queue-proxies) while the revision's PodAutoscaler has the pods
// take requests first (mode Serve) and it has some; otherwise (mode Proxy: at zero, or while
// the autoscaler keeps the activator in the path for burst capacity) the ready pods of the
// activator's Service, which read the Knative-Serving-Namespace/-Revision headers the
// HTTPRoutes set to know the revision, and wake it from zero.

// EndpointSliceManager is the endpointslice.kubernetes.io/managed-by label of the slices this
// package keeps, so Kubernetes' own controllers leave them alone.
const EndpointSliceManager = "gateway-api.gantry.dev"

// Port names of the backend Service and its EndpointSlice (and of the activator's Service):
// Knative's names for HTTP/1 and h2c.
const (
	PortNameHTTP  = "http"
	PortNameHTTP2 = "http2"
	// appProtocolH2C tells a Gateway API implementation to speak h2c to the backend
	// (Gateway API's GEP-1911 value).
	appProtocolH2C = "kubernetes.io/h2c"
)

// BackendLabels are the labels of a revision's backend Service and EndpointSlice, Knative's
// for a public serverless service: the revision's own (but its routing state, which changes
// as routes move), its name and UID, and the service type Public.
func BackendLabels(rev *servingv1.Revision) map[string]string {
	own := kmeta.FilterMap(rev.Labels, func(k string) bool { return k == servingv1.RoutingStateLabelKey })
	return kmeta.UnionMaps(own, map[string]string{
		servingv1.RevisionLabelKey:            rev.Name,
		servingv1.RevisionUID:                 string(rev.UID),
		netv1alpha1.ServerlessServiceLabelKey: rev.Name,
		netv1alpha1.ServiceTypeLabelKey:       netv1alpha1.ServiceTypePublic,
	})
}

// MakeBackendService is the Service <revision> the HTTPRoutes send rev's share of traffic
// to: a ClusterIP Service without a selector (MakeBackendEndpointSlice gives its endpoints),
// port BackendPort to the queue-proxy's port; for an h2c revision, as Knative's, the port is
// BackendH2CPort named http2 to the queue-proxy's h2c port, and it carries the h2c application
// protocol.
func MakeBackendService(rev *servingv1.Revision, h2c bool) *corev1.Service {
	port := corev1.ServicePort{
		Name:       PortNameHTTP,
		Protocol:   corev1.ProtocolTCP,
		Port:       BackendPort,
		TargetPort: intstr.FromInt32(contract.HTTPPort),
	}
	if h2c {
		port.Name, port.AppProtocol = PortNameHTTP2, ptr.To(appProtocolH2C)
		port.Port, port.TargetPort = BackendH2CPort, intstr.FromInt32(contract.H2CPort)
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:            rev.Name,
			Namespace:       rev.Namespace,
			Labels:          BackendLabels(rev),
			OwnerReferences: []metav1.OwnerReference{kmeta.OwnerRef(rev, rev.GetGroupVersionKind())},
		},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeClusterIP,
			Ports: []corev1.ServicePort{port},
		},
	}
}

// Backends are what a revision's backend EndpointSlice is made from.
type Backends struct {
	// Serve is true while the revision's PodAutoscaler has its pods take requests first
	// (status.mode Serve).
	Serve bool
	// H2C is true for a revision that speaks h2c.
	H2C bool
	// Pods are the EndpointSlices of the revision's private Service (<revision>-private).
	Pods []discoveryv1.EndpointSlice
	// Activator are the EndpointSlices of the activator's Service.
	Activator []discoveryv1.EndpointSlice
}

// MakeBackendEndpointSlice is the EndpointSlice of rev's backend Service: the ready pods'
// queue-proxies when b.Serve and one is ready, else the activator's ready endpoints. Each
// keeps the port of its own Service's port named http, but an h2c revision's queue-proxies,
// reached on their h2c port as in Knative (the activator takes h2c on its one port); IPv4
// endpoints are preferred, IPv6 ones taken when there are no others (a slice holds one
// address type). It also reports whether the slice points at the activator.
func MakeBackendEndpointSlice(rev *servingv1.Revision, b Backends) (*discoveryv1.EndpointSlice, bool) {
	eps, port, addrType := readyEndpoints(b.Pods)
	if b.H2C {
		port = contract.H2CPort
	}
	toActivator := !b.Serve || len(eps) == 0
	if toActivator {
		eps, port, addrType = readyEndpoints(b.Activator)
	}
	name := PortNameHTTP
	var appProtocol *string
	if b.H2C {
		name, appProtocol = PortNameHTTP2, ptr.To(appProtocolH2C)
	}
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:      rev.Name,
			Namespace: rev.Namespace,
			Labels: kmeta.UnionMaps(BackendLabels(rev), map[string]string{
				discoveryv1.LabelServiceName: rev.Name,
				discoveryv1.LabelManagedBy:   EndpointSliceManager,
			}),
			OwnerReferences: []metav1.OwnerReference{kmeta.OwnerRef(rev, rev.GetGroupVersionKind())},
		},
		AddressType: addrType,
		Endpoints:   eps,
		Ports: []discoveryv1.EndpointPort{{
			Name:        ptr.To(name),
			Protocol:    ptr.To(corev1.ProtocolTCP),
			Port:        ptr.To(port),
			AppProtocol: appProtocol,
		}},
	}, toActivator
}

// readyEndpoints are the ready endpoints of slices (IPv4 ones, else IPv6 ones), each address
// once, sorted by address, with the port of the slices' port named http (the first port of a
// slice without one; contract.HTTPPort when there is none).
func readyEndpoints(from []discoveryv1.EndpointSlice) ([]discoveryv1.Endpoint, int32, discoveryv1.AddressType) {
	byType := map[discoveryv1.AddressType][]discoveryv1.Endpoint{}
	ports := map[discoveryv1.AddressType]int32{}
	seen := map[string]bool{}
	for i := range from {
		s := &from[i]
		if s.AddressType != discoveryv1.AddressTypeIPv4 && s.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		port, ok := httpPort(s.Ports)
		if !ok {
			continue
		}
		for _, e := range s.Endpoints {
			if !ptr.Deref(e.Conditions.Ready, true) || ptr.Deref(e.Conditions.Terminating, false) {
				continue
			}
			var addrs []string
			for _, a := range e.Addresses {
				if !seen[a] {
					seen[a] = true
					addrs = append(addrs, a)
				}
			}
			if len(addrs) == 0 {
				continue
			}
			byType[s.AddressType] = append(byType[s.AddressType], discoveryv1.Endpoint{
				Addresses:  addrs,
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
				NodeName:   e.NodeName,
				Zone:       e.Zone,
				TargetRef:  e.TargetRef,
			})
			ports[s.AddressType] = port
		}
	}
	addrType := discoveryv1.AddressTypeIPv4
	if len(byType[addrType]) == 0 && len(byType[discoveryv1.AddressTypeIPv6]) > 0 {
		addrType = discoveryv1.AddressTypeIPv6
	}
	eps := byType[addrType]
	slices.SortFunc(eps, func(a, b discoveryv1.Endpoint) int { return cmp.Compare(a.Addresses[0], b.Addresses[0]) })
	if eps == nil {
		eps = []discoveryv1.Endpoint{}
	}
	return eps, cmp.Or(ports[addrType], int32(contract.HTTPPort)), addrType
}

// httpPort is the port named http of a slice, else its first.
func httpPort(ports []discoveryv1.EndpointPort) (int32, bool) {
	for _, p := range ports {
		if ptr.Deref(p.Name, "") == PortNameHTTP && p.Port != nil {
			return *p.Port, true
		}
	}
	if len(ports) > 0 && ports[0].Port != nil {
		return *ports[0].Port, true
	}
	return 0, false
}
