package dns

import (
	"net"
	"slices"
	"strings"
	"sync"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gantry-run/gantry/internal/dns/resolvconf"
	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
)

// ClusterDomain is the cluster's DNS domain; resolvconf owns it.
const ClusterDomain = resolvconf.ClusterDomain

// TTL is the time to live of every answer from the cluster domain, in seconds; short, as
// CoreDNS's kubernetes plugin keeps it, because Services and endpoints change.
const TTL = 5

// Zone holds the cluster domain's names, kept from Services, EndpointSlices and the Ingresses
// of Knative Routes, and answers lookups from memory. It is safe for concurrent use.
type Zone struct {
	origin  string // "cluster.local."
	gateway net.IP
	// gatewaySvc, when set, is the Service in front of the gateways: the Routes' cluster
	// hosts answer with its ClusterIPs while it has them, else with gateway.
	gatewaySvc types.NamespacedName

	mu       sync.RWMutex
	services map[types.NamespacedName]*service
	// slices are the EndpointSlices by their own key; bySvc indexes them by Service.
	slices map[types.NamespacedName]*endpointSlice
	bySvc  map[types.NamespacedName]map[types.NamespacedName]*endpointSlice
	// hosts are the Routes' cluster hosts (<name>.<ns>.svc.cluster.local.), each with the
	// Ingresses that claim it; ingressHosts is what each Ingress claims.
	hosts        map[string]map[types.NamespacedName]struct{}
	ingressHosts map[types.NamespacedName][]string
	// names counts the Services and hosts of each namespace, so <ns>.svc.cluster.local exists
	// exactly while something is named under it.
	names map[string]int
}

type service struct {
	clusterIPs      []net.IP
	headless        bool
	externalName    string
	ports           []port
	publishNotReady bool
}

type port struct {
	name  string
	proto string // lower case: tcp, udp, sctp
	port  uint16
}

type endpointSlice struct {
	service   types.NamespacedName
	endpoints []endpoint
	ports     []port
}

type endpoint struct {
	ip       net.IP
	hostname string
	ready    bool
}

// NewZone returns an empty zone for the cluster domain whose Routes' cluster hosts answer with
// gateway, the gateway's address on the pods' bridge.
func NewZone(gateway net.IP) *Zone {
	return &Zone{
		origin:       mdns.Fqdn(ClusterDomain),
		gateway:      gateway,
		services:     map[types.NamespacedName]*service{},
		slices:       map[types.NamespacedName]*endpointSlice{},
		bySvc:        map[types.NamespacedName]map[types.NamespacedName]*endpointSlice{},
		hosts:        map[string]map[types.NamespacedName]struct{}{},
		ingressHosts: map[types.NamespacedName][]string{},
		names:        map[string]int{},
	}
}

// SetGatewayService has the Routes' cluster hosts answer with the ClusterIPs of the Service
// key (the gateways' Service, which reaches a gateway from every node) while it has them, and
// with the zone's gateway address (none when nil) otherwise. Call it before the zone answers.
func (z *Zone) SetGatewayService(key types.NamespacedName) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.gatewaySvc = key
}

// gatewayIPs are the addresses a Route's cluster host answers with.
func (z *Zone) gatewayIPs() []net.IP {
	if z.gatewaySvc.Name != "" {
		if s, ok := z.services[z.gatewaySvc]; ok && len(s.clusterIPs) > 0 {
			return s.clusterIPs
		}
	}
	if z.gateway == nil {
		return nil
	}
	return []net.IP{z.gateway}
}

// Origin is the zone's apex, "cluster.local.".
func (z *Zone) Origin() string { return z.origin }

// Contains reports whether name (a fully qualified name) is in the cluster domain.
func (z *Zone) Contains(name string) bool {
	return mdns.IsSubDomain(z.origin, strings.ToLower(name))
}

// SetService adds or replaces a Service.
func (z *Zone) SetService(svc *corev1.Service) {
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	s := &service{publishNotReady: svc.Spec.PublishNotReadyAddresses}
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		s.externalName = mdns.Fqdn(strings.ToLower(svc.Spec.ExternalName))
	case svc.Spec.ClusterIP == corev1.ClusterIPNone:
		s.headless = true
	default:
		ips := svc.Spec.ClusterIPs
		if len(ips) == 0 && svc.Spec.ClusterIP != "" {
			ips = []string{svc.Spec.ClusterIP}
		}
		for _, v := range ips {
			if ip := net.ParseIP(v); ip != nil {
				s.clusterIPs = append(s.clusterIPs, ip)
			}
		}
	}
	for _, p := range svc.Spec.Ports {
		s.ports = append(s.ports, port{name: strings.ToLower(p.Name), proto: protocol(p.Protocol), port: uint16(p.Port)})
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if _, ok := z.services[key]; !ok {
		z.names[key.Namespace]++
	}
	z.services[key] = s
}

// DeleteService removes a Service.
func (z *Zone) DeleteService(key types.NamespacedName) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if _, ok := z.services[key]; ok {
		delete(z.services, key)
		z.release(key.Namespace)
	}
}

// SetEndpointSlice adds or replaces an EndpointSlice; one without a Service label is ignored.
func (z *Zone) SetEndpointSlice(es *discoveryv1.EndpointSlice) {
	key := types.NamespacedName{Namespace: es.Namespace, Name: es.Name}
	svcName := es.Labels[discoveryv1.LabelServiceName]
	if svcName == "" {
		z.DeleteEndpointSlice(key)
		return
	}
	s := &endpointSlice{service: types.NamespacedName{Namespace: es.Namespace, Name: svcName}}
	for _, ep := range es.Endpoints {
		ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
		host := ""
		if ep.Hostname != nil {
			host = strings.ToLower(*ep.Hostname)
		}
		for _, a := range ep.Addresses {
			if ip := net.ParseIP(a); ip != nil {
				s.endpoints = append(s.endpoints, endpoint{ip: ip, hostname: host, ready: ready})
			}
		}
	}
	for _, p := range es.Ports {
		if p.Port == nil {
			continue
		}
		name := ""
		if p.Name != nil {
			name = strings.ToLower(*p.Name)
		}
		proto := "tcp"
		if p.Protocol != nil {
			proto = protocol(*p.Protocol)
		}
		s.ports = append(s.ports, port{name: name, proto: proto, port: uint16(*p.Port)})
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.deleteSliceLocked(key)
	z.slices[key] = s
	if z.bySvc[s.service] == nil {
		z.bySvc[s.service] = map[types.NamespacedName]*endpointSlice{}
	}
	z.bySvc[s.service][key] = s
}

// DeleteEndpointSlice removes an EndpointSlice.
func (z *Zone) DeleteEndpointSlice(key types.NamespacedName) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.deleteSliceLocked(key)
}

func (z *Zone) deleteSliceLocked(key types.NamespacedName) {
	old, ok := z.slices[key]
	if !ok {
		return
	}
	delete(z.slices, key)
	delete(z.bySvc[old.service], key)
	if len(z.bySvc[old.service]) == 0 {
		delete(z.bySvc, old.service)
	}
}

// SetIngress adds or replaces the cluster hosts an Ingress claims: the hosts of its
// ClusterLocal rules that lie in the cluster domain (the short forms are for the gateway's
// Host matching; resolvers reach them through the search path). An Ingress being deleted
// claims nothing, as the gateway serves it no more.
func (z *Zone) SetIngress(ing *netv1alpha1.Ingress) {
	key := types.NamespacedName{Namespace: ing.Namespace, Name: ing.Name}
	var hosts []string
	if ing.DeletionTimestamp == nil {
		for _, r := range ing.Spec.Rules {
			if r.Visibility != netv1alpha1.IngressVisibilityClusterLocal || r.HTTP == nil {
				continue
			}
			for _, h := range r.Hosts {
				h = mdns.Fqdn(strings.ToLower(h))
				if _, _, ok := z.serviceName(h); ok && !slices.Contains(hosts, h) {
					hosts = append(hosts, h)
				}
			}
		}
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.setHostsLocked(key, hosts)
}

// DeleteIngress removes the hosts an Ingress claimed.
func (z *Zone) DeleteIngress(key types.NamespacedName) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.setHostsLocked(key, nil)
}

func (z *Zone) setHostsLocked(key types.NamespacedName, hosts []string) {
	for _, h := range z.ingressHosts[key] {
		if slices.Contains(hosts, h) {
			continue
		}
		delete(z.hosts[h], key)
		if len(z.hosts[h]) == 0 {
			delete(z.hosts, h)
			_, ns, _ := z.serviceName(h)
			z.release(ns)
		}
	}
	for _, h := range hosts {
		if z.hosts[h] == nil {
			z.hosts[h] = map[types.NamespacedName]struct{}{}
			_, ns, _ := z.serviceName(h)
			z.names[ns]++
		}
		z.hosts[h][key] = struct{}{}
	}
	if len(hosts) == 0 {
		delete(z.ingressHosts, key)
	} else {
		z.ingressHosts[key] = hosts
	}
}

// release drops one name of namespace ns.
func (z *Zone) release(ns string) {
	if z.names[ns]--; z.names[ns] <= 0 {
		delete(z.names, ns)
	}
}

// serviceName splits "<name>.<ns>.svc.<origin>" (lower case, fully qualified).
func (z *Zone) serviceName(fqdn string) (name, ns string, ok bool) {
	labels, inZone := z.relative(fqdn)
	if !inZone || len(labels) != 3 || labels[2] != "svc" {
		return "", "", false
	}
	return labels[0], labels[1], true
}

// relative returns the labels of fqdn below the origin, or false outside the zone.
func (z *Zone) relative(fqdn string) ([]string, bool) {
	if !mdns.IsSubDomain(z.origin, fqdn) {
		return nil, false
	}
	rel := strings.TrimSuffix(strings.TrimSuffix(fqdn, z.origin), ".")
	if rel == "" {
		return nil, true
	}
	return strings.Split(rel, "."), true
}

// Result is the zone's answer to one question.
type Result struct {
	// Answer holds the records of the asked name and type.
	Answer []mdns.RR
	// Extra holds the addresses of SRV targets.
	Extra []mdns.RR
	// Exists says the name exists: with no Answer, the reply is NODATA; false is NXDOMAIN.
	Exists bool
	// Target is the canonical name of an ExternalName Service that Answer's CNAME points
	// to, for the server to resolve in turn; empty otherwise.
	Target string
}

// Lookup answers one question for a name in the zone; qname is fully qualified.
func (z *Zone) Lookup(qname string, qtype uint16) Result {
	name := strings.ToLower(qname)
	labels, ok := z.relative(name)
	if !ok {
		return Result{}
	}
	z.mu.RLock()
	defer z.mu.RUnlock()
	if len(labels) == 0 {
		r := Result{Exists: true}
		if qtype == mdns.TypeSOA || qtype == mdns.TypeANY {
			r.Answer = []mdns.RR{z.SOA()}
		}
		return r
	}
	switch labels[len(labels)-1] {
	case "svc":
		return z.lookupSvc(qname, labels[:len(labels)-1], qtype)
	case "pod":
		return z.lookupPod(qname, labels[:len(labels)-1], qtype)
	}
	return Result{}
}

// lookupSvc answers below svc.<origin>; labels are the ones left of "svc".
func (z *Zone) lookupSvc(qname string, labels []string, qtype uint16) Result {
	switch len(labels) {
	case 0:
		return Result{Exists: true}
	case 1:
		return Result{Exists: z.names[labels[0]] > 0}
	case 2:
		return z.lookupService(qname, labels[0], labels[1], qtype)
	case 3:
		key := types.NamespacedName{Namespace: labels[2], Name: labels[1]}
		if strings.HasPrefix(labels[0], "_") {
			// _<proto>.<svc>: exists while a port of the Service speaks proto.
			s := z.services[key]
			return Result{Exists: s != nil && slices.ContainsFunc(s.ports, func(p port) bool { return "_"+p.proto == labels[0] })}
		}
		return z.lookupEndpoint(qname, labels[0], key, qtype)
	case 4:
		key := types.NamespacedName{Namespace: labels[3], Name: labels[2]}
		return z.lookupSRV(qname, labels[0], labels[1], key, qtype)
	}
	return Result{}
}

// lookupService answers <name>.<ns>.svc: a Route's cluster host first (the name belongs to
// the Knative Service), then a Kubernetes Service.
func (z *Zone) lookupService(qname, name, ns string, qtype uint16) Result {
	if _, ok := z.hosts[strings.ToLower(qname)]; ok {
		return Result{Exists: true, Answer: addressRRs(qname, qtype, z.gatewayIPs())}
	}
	key := types.NamespacedName{Namespace: ns, Name: name}
	s, ok := z.services[key]
	if !ok {
		return Result{}
	}
	switch {
	case s.externalName != "":
		cname := &mdns.CNAME{Hdr: header(qname, mdns.TypeCNAME), Target: s.externalName}
		r := Result{Exists: true, Answer: []mdns.RR{cname}}
		if qtype != mdns.TypeCNAME {
			r.Target = s.externalName
		}
		return r
	case s.headless:
		return Result{Exists: true, Answer: addressRRs(qname, qtype, z.endpointIPs(key, s))}
	default:
		return Result{Exists: true, Answer: addressRRs(qname, qtype, s.clusterIPs)}
	}
}

// lookupEndpoint answers <endpoint>.<svc>.<ns>.svc for a headless Service: the endpoint whose
// hostname, or whose address with dashes, is the first label.
func (z *Zone) lookupEndpoint(qname, label string, key types.NamespacedName, qtype uint16) Result {
	s, ok := z.services[key]
	if !ok || !s.headless {
		return Result{}
	}
	var ips []net.IP
	for _, ep := range z.endpoints(key, s) {
		if ep.hostname == label || dashed(ep.ip) == label {
			ips = appendIP(ips, ep.ip)
		}
	}
	if len(ips) == 0 {
		return Result{}
	}
	return Result{Exists: true, Answer: addressRRs(qname, qtype, ips)}
}

// lookupSRV answers _<port>._<proto>.<svc>.<ns>.svc: the named port of a Service, through its
// cluster name, or through each endpoint's name for a headless one.
func (z *Zone) lookupSRV(qname, portLabel, protoLabel string, key types.NamespacedName, qtype uint16) Result {
	s, ok := z.services[key]
	if !ok || s.externalName != "" || !strings.HasPrefix(portLabel, "_") || !strings.HasPrefix(protoLabel, "_") {
		return Result{}
	}
	pname, proto := portLabel[1:], protoLabel[1:]
	svcName := mdns.Fqdn(key.Name + "." + key.Namespace + ".svc." + strings.TrimSuffix(z.origin, "."))
	r := Result{}
	if !s.headless {
		for _, p := range s.ports {
			if p.name != pname || p.proto != proto {
				continue
			}
			r.Exists = true
			if qtype == mdns.TypeSRV || qtype == mdns.TypeANY {
				r.Answer = append(r.Answer, srv(qname, p.port, svcName))
				r.Extra = append(r.Extra, addressRRs(svcName, mdns.TypeANY, s.clusterIPs)...)
			}
		}
		return r
	}
	for _, sl := range z.bySvc[key] {
		for _, p := range sl.ports {
			if p.name != pname || p.proto != proto {
				continue
			}
			r.Exists = true
			if qtype != mdns.TypeSRV && qtype != mdns.TypeANY {
				continue
			}
			for _, ep := range sl.endpoints {
				if !ep.ready && !s.publishNotReady {
					continue
				}
				label := ep.hostname
				if label == "" {
					label = dashed(ep.ip)
				}
				target := label + "." + svcName
				r.Answer = append(r.Answer, srv(qname, p.port, target))
				r.Extra = append(r.Extra, addressRRs(target, mdns.TypeANY, []net.IP{ep.ip})...)
			}
		}
	}
	return r
}

// lookupPod answers <a-b-c-d>.<ns>.pod with the address the first label spells, as CoreDNS's
// "pods insecure" does.
func (z *Zone) lookupPod(qname string, labels []string, qtype uint16) Result {
	switch len(labels) {
	case 0, 1:
		return Result{Exists: true}
	case 2:
		ip := undash(labels[0])
		if ip == nil {
			return Result{}
		}
		return Result{Exists: true, Answer: addressRRs(qname, qtype, []net.IP{ip})}
	}
	return Result{}
}

// endpoints are the endpoints of a Service that answer: ready ones, or all when the Service
// publishes not-ready addresses.
func (z *Zone) endpoints(key types.NamespacedName, s *service) []endpoint {
	var out []endpoint
	for _, sl := range z.bySvc[key] {
		for _, ep := range sl.endpoints {
			if ep.ready || s.publishNotReady {
				out = append(out, ep)
			}
		}
	}
	return out
}

func (z *Zone) endpointIPs(key types.NamespacedName, s *service) []net.IP {
	var ips []net.IP
	for _, ep := range z.endpoints(key, s) {
		ips = appendIP(ips, ep.ip)
	}
	slices.SortFunc(ips, func(a, b net.IP) int { return strings.Compare(a.String(), b.String()) })
	return ips
}

// SOA is the zone's start of authority, sent with negative answers so resolvers cache them
// for TTL seconds at most.
func (z *Zone) SOA() mdns.RR {
	return &mdns.SOA{
		Hdr:     header(z.origin, mdns.TypeSOA),
		Ns:      "ns.dns." + z.origin,
		Mbox:    "hostmaster." + z.origin,
		Serial:  1,
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  TTL,
	}
}

func header(name string, rrtype uint16) mdns.RR_Header {
	return mdns.RR_Header{Name: name, Rrtype: rrtype, Class: mdns.ClassINET, Ttl: TTL}
}

// addressRRs are the A (IPv4) or AAAA (IPv6) records of ips that qtype asks for; ANY asks
// for both.
func addressRRs(name string, qtype uint16, ips []net.IP) []mdns.RR {
	var out []mdns.RR
	for _, ip := range ips {
		if v4 := ip.To4(); v4 != nil {
			if qtype == mdns.TypeA || qtype == mdns.TypeANY {
				out = append(out, &mdns.A{Hdr: header(name, mdns.TypeA), A: v4})
			}
		} else if qtype == mdns.TypeAAAA || qtype == mdns.TypeANY {
			out = append(out, &mdns.AAAA{Hdr: header(name, mdns.TypeAAAA), AAAA: ip})
		}
	}
	return out
}

func srv(name string, p uint16, target string) mdns.RR {
	return &mdns.SRV{Hdr: header(name, mdns.TypeSRV), Priority: 0, Weight: 100, Port: p, Target: target}
}

func appendIP(ips []net.IP, ip net.IP) []net.IP {
	if slices.ContainsFunc(ips, ip.Equal) {
		return ips
	}
	return append(ips, ip)
}

func protocol(p corev1.Protocol) string {
	if p == "" {
		return "tcp"
	}
	return strings.ToLower(string(p))
}

// dashed is an address as a DNS label: 10-42-0-7, or 2001-db8--1.
func dashed(ip net.IP) string {
	if v4 := ip.To4(); v4 != nil {
		return strings.ReplaceAll(v4.String(), ".", "-")
	}
	return strings.ReplaceAll(ip.String(), ":", "-")
}

// undash reads an address written as a DNS label; nil when it is not one.
func undash(label string) net.IP {
	if strings.Count(label, "-") == 3 {
		if ip := net.ParseIP(strings.ReplaceAll(label, "-", ".")); ip != nil && ip.To4() != nil {
			return ip.To4()
		}
	}
	if ip := net.ParseIP(strings.ReplaceAll(label, "-", ":")); ip != nil && ip.To4() == nil {
		return ip
	}
	return nil
}
