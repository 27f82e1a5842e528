package dns

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
)

var gatewayIP = net.ParseIP("10.42.0.1").To4()

func clusterIPService(ns, name string, ips ...string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: ips[0], ClusterIPs: ips,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
}

func headlessService(ns, name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone, ClusterIPs: []string{corev1.ClusterIPNone},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80}},
		},
	}
}

type ep struct {
	ip, hostname string
	ready        bool
}

func slice(ns, name, svc string, eps ...ep) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for _, e := range eps {
		end := discoveryv1.Endpoint{Addresses: []string{e.ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(e.ready)}}
		if e.hostname != "" {
			end.Hostname = ptr.To(e.hostname)
		}
		es.Endpoints = append(es.Endpoints, end)
	}
	return es
}

func ingress(ns, name string, visibility netv1alpha1.IngressVisibility, hosts ...string) *netv1alpha1.Ingress {
	return &netv1alpha1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: netv1alpha1.IngressSpec{Rules: []netv1alpha1.IngressRule{{
			Hosts: hosts, Visibility: visibility,
			HTTP: &netv1alpha1.HTTPIngressRuleValue{Paths: []netv1alpha1.HTTPIngressPath{{}}},
		}}},
	}
}

// testZone holds one of everything the zone answers for.
func testZone() *Zone {
	z := NewZone(gatewayIP)
	z.SetService(clusterIPService("default", "web", "10.43.0.10"))
	z.SetService(clusterIPService("default", "dual", "10.43.0.11", "fd00:43::11"))
	z.SetService(headlessService("default", "db"))
	z.SetEndpointSlice(slice("default", "db-abc", "db", ep{"10.42.0.7", "db-0", true}, ep{"10.42.0.8", "", true}, ep{"10.42.0.9", "db-2", false}))
	z.SetService(&corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ext"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "Example.COM"},
	})
	// The Route "hello": its Ingress has the external host and the cluster hosts.
	ing := ingress("default", "hello", netv1alpha1.IngressVisibilityClusterLocal,
		"hello.default.svc.cluster.local", "hello.default.svc", "hello.default")
	ing.Spec.Rules = append(ing.Spec.Rules, netv1alpha1.IngressRule{
		Hosts: []string{"hello.default.localhost"}, Visibility: netv1alpha1.IngressVisibilityExternalIP,
		HTTP: &netv1alpha1.HTTPIngressRuleValue{},
	})
	z.SetIngress(ing)
	// A Kubernetes Service of the Route's name loses to the Route.
	z.SetService(clusterIPService("default", "hello", "10.43.0.99"))
	return z
}

// rrs renders records as text, without the TTL-bearing header details that do not vary.
func rrs(records []mdns.RR) []string {
	var out []string
	for _, r := range records {
		out = append(out, strings.ReplaceAll(r.String(), "\t", " "))
	}
	slices.Sort(out)
	return out
}

func TestZoneLookup(t *testing.T) {
	z := testZone()
	for _, tc := range []struct {
		name   string
		qtype  uint16
		exists bool
		answer []string
		extra  []string
		target string
	}{
		{name: "web.default.svc.cluster.local.", qtype: mdns.TypeA, exists: true,
			answer: []string{"web.default.svc.cluster.local. 5 IN A 10.43.0.10"}},
		{name: "WEB.Default.svc.cluster.local.", qtype: mdns.TypeA, exists: true,
			answer: []string{"WEB.Default.svc.cluster.local. 5 IN A 10.43.0.10"}},
		{name: "web.default.svc.cluster.local.", qtype: mdns.TypeAAAA, exists: true},
		{name: "dual.default.svc.cluster.local.", qtype: mdns.TypeAAAA, exists: true,
			answer: []string{"dual.default.svc.cluster.local. 5 IN AAAA fd00:43::11"}},
		{name: "hello.default.svc.cluster.local.", qtype: mdns.TypeA, exists: true,
			answer: []string{"hello.default.svc.cluster.local. 5 IN A 10.42.0.1"}},
		{name: "hello.default.svc.cluster.local.", qtype: mdns.TypeAAAA, exists: true},
		{name: "db.default.svc.cluster.local.", qtype: mdns.TypeA, exists: true, answer: []string{
			"db.default.svc.cluster.local. 5 IN A 10.42.0.7",
			"db.default.svc.cluster.local. 5 IN A 10.42.0.8",
		}},
		{name: "db-0.db.default.svc.cluster.local.", qtype: mdns.TypeA, exists: true,
			answer: []string{"db-0.db.default.svc.cluster.local. 5 IN A 10.42.0.7"}},
		{name: "10-42-0-8.db.default.svc.cluster.local.", qtype: mdns.TypeA, exists: true,
			answer: []string{"10-42-0-8.db.default.svc.cluster.local. 5 IN A 10.42.0.8"}},
		{name: "db-2.db.default.svc.cluster.local.", qtype: mdns.TypeA}, // not ready
		{name: "x.web.default.svc.cluster.local.", qtype: mdns.TypeA},   // not headless
		{name: "ext.default.svc.cluster.local.", qtype: mdns.TypeA, exists: true, target: "example.com.",
			answer: []string{"ext.default.svc.cluster.local. 5 IN CNAME example.com."}},
		{name: "ext.default.svc.cluster.local.", qtype: mdns.TypeCNAME, exists: true,
			answer: []string{"ext.default.svc.cluster.local. 5 IN CNAME example.com."}},
		{name: "_http._tcp.web.default.svc.cluster.local.", qtype: mdns.TypeSRV, exists: true,
			answer: []string{"_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local."},
			extra:  []string{"web.default.svc.cluster.local. 5 IN A 10.43.0.10"}},
		{name: "_http._tcp.db.default.svc.cluster.local.", qtype: mdns.TypeSRV, exists: true, answer: []string{
			"_http._tcp.db.default.svc.cluster.local. 5 IN SRV 0 100 8080 10-42-0-8.db.default.svc.cluster.local.",
			"_http._tcp.db.default.svc.cluster.local. 5 IN SRV 0 100 8080 db-0.db.default.svc.cluster.local.",
		}, extra: []string{
			"10-42-0-8.db.default.svc.cluster.local. 5 IN A 10.42.0.8",
			"db-0.db.default.svc.cluster.local. 5 IN A 10.42.0.7",
		}},
		{name: "_http._tcp.web.default.svc.cluster.local.", qtype: mdns.TypeA, exists: true},
		{name: "_tcp.web.default.svc.cluster.local.", qtype: mdns.TypeA, exists: true},
		{name: "_udp.web.default.svc.cluster.local.", qtype: mdns.TypeA},
		{name: "_grpc._tcp.web.default.svc.cluster.local.", qtype: mdns.TypeSRV},
		{name: "10-42-0-5.default.pod.cluster.local.", qtype: mdns.TypeA, exists: true,
			answer: []string{"10-42-0-5.default.pod.cluster.local. 5 IN A 10.42.0.5"}},
		{name: "fd00-42--5.default.pod.cluster.local.", qtype: mdns.TypeAAAA, exists: true,
			answer: []string{"fd00-42--5.default.pod.cluster.local. 5 IN AAAA fd00:42::5"}},
		{name: "nope.default.pod.cluster.local.", qtype: mdns.TypeA},
		// Names that exist with nothing of their own: NODATA, not NXDOMAIN.
		{name: "cluster.local.", qtype: mdns.TypeA, exists: true},
		{name: "cluster.local.", qtype: mdns.TypeSOA, exists: true,
			answer: []string{"cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"}},
		{name: "svc.cluster.local.", qtype: mdns.TypeA, exists: true},
		{name: "default.svc.cluster.local.", qtype: mdns.TypeA, exists: true},
		// Unknown names: NXDOMAIN. The first is what the search path tries before the name.
		{name: "web.default.svc.cluster.local.default.svc.cluster.local.", qtype: mdns.TypeA},
		{name: "missing.default.svc.cluster.local.", qtype: mdns.TypeA},
		{name: "web.other.svc.cluster.local.", qtype: mdns.TypeA},
		{name: "other.svc.cluster.local.", qtype: mdns.TypeA},
		{name: "hello.default.cluster.local.", qtype: mdns.TypeA},
		{name: "example.com.", qtype: mdns.TypeA},
	} {
		t.Run(tc.name+"/"+mdns.TypeToString[tc.qtype], func(t *testing.T) {
			got := z.Lookup(tc.name, tc.qtype)
			if got.Exists != tc.exists {
				t.Errorf("exists = %v, want %v", got.Exists, tc.exists)
			}
			if diff := cmp.Diff(tc.answer, rrs(got.Answer)); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.extra, rrs(got.Extra)); diff != "" {
				t.Errorf("extra (-want +got):\n%s", diff)
			}
			if got.Target != tc.target {
				t.Errorf("target = %q, want %q", got.Target, tc.target)
			}
		})
	}
}

func TestZoneFollowsChanges(t *testing.T) {
	z := NewZone(gatewayIP)
	key := types.NamespacedName{Namespace: "ns", Name: "a"}
	exists := func(name string) bool { return z.Lookup(name, mdns.TypeA).Exists }

	// An Ingress's external rules and the hosts outside the cluster domain are not names.
	z.SetIngress(ingress("ns", "a", netv1alpha1.IngressVisibilityExternalIP, "a.ns.svc.cluster.local"))
	if exists("a.ns.svc.cluster.local.") || exists("ns.svc.cluster.local.") {
		t.Fatal("an ExternalIP rule's host became a name")
	}
	z.SetIngress(ingress("ns", "a", netv1alpha1.IngressVisibilityClusterLocal, "a.ns.svc.cluster.local", "a.ns.svc", "a.ns"))
	z.SetIngress(ingress("ns", "b", netv1alpha1.IngressVisibilityClusterLocal, "a.ns.svc.cluster.local"))
	if !exists("a.ns.svc.cluster.local.") || !exists("ns.svc.cluster.local.") {
		t.Fatal("cluster hosts missing")
	}
	// Two Ingresses claim the host: it stays while one does.
	z.DeleteIngress(key)
	if !exists("a.ns.svc.cluster.local.") {
		t.Fatal("the host went with one of its two claims")
	}
	deleting := ingress("ns", "b", netv1alpha1.IngressVisibilityClusterLocal, "a.ns.svc.cluster.local")
	deleting.DeletionTimestamp = ptr.To(metav1.Now())
	z.SetIngress(deleting)
	if exists("a.ns.svc.cluster.local.") || exists("ns.svc.cluster.local.") {
		t.Fatal("a host of an Ingress being deleted still answers")
	}

	// A Service, its slice moving to another Service, then gone.
	z.SetService(headlessService("ns", "h"))
	z.SetService(headlessService("ns", "g"))
	z.SetEndpointSlice(slice("ns", "s1", "h", ep{ip: "10.42.0.2", ready: true}))
	if got := rrs(z.Lookup("h.ns.svc.cluster.local.", mdns.TypeA).Answer); len(got) != 1 {
		t.Fatalf("h = %v, want one address", got)
	}
	z.SetEndpointSlice(slice("ns", "s1", "g", ep{ip: "10.42.0.2", ready: true}))
	if got := z.Lookup("h.ns.svc.cluster.local.", mdns.TypeA); !got.Exists || len(got.Answer) != 0 {
		t.Fatalf("h after its slice moved = %+v, want NODATA", got)
	}
	if got := z.Lookup("g.ns.svc.cluster.local.", mdns.TypeA); len(got.Answer) != 1 {
		t.Fatalf("g = %+v, want one address", got)
	}
	z.DeleteEndpointSlice(types.NamespacedName{Namespace: "ns", Name: "s1"})
	z.DeleteService(types.NamespacedName{Namespace: "ns", Name: "h"})
	z.DeleteService(types.NamespacedName{Namespace: "ns", Name: "g"})
	if exists("g.ns.svc.cluster.local.") || exists("ns.svc.cluster.local.") {
		t.Fatal("deleted Services still answer")
	}
	if len(z.slices) != 0 || len(z.bySvc) != 0 || len(z.names) != 0 || len(z.hosts) != 0 || len(z.ingressHosts) != 0 {
		t.Errorf("zone not empty: %d slices, %d indexed, names %v, hosts %v", len(z.slices), len(z.bySvc), z.names, z.hosts)
	}
}

func TestZonePublishNotReady(t *testing.T) {
	z := NewZone(gatewayIP)
	svc := headlessService("ns", "h")
	svc.Spec.PublishNotReadyAddresses = true
	z.SetService(svc)
	z.SetEndpointSlice(slice("ns", "s1", "h", ep{ip: "10.42.0.2"}, ep{ip: "10.42.0.3", ready: true}))
	if got := rrs(z.Lookup("h.ns.svc.cluster.local.", mdns.TypeA).Answer); len(got) != 2 {
		t.Errorf("publishNotReadyAddresses: %v, want both endpoints", got)
	}
}

// On an agent, which has no gateway: the Routes' cluster hosts answer with the ClusterIP of
// the gateways' Service while it has one, and with no address before.
func TestZoneGatewayService(t *testing.T) {
	gw := types.NamespacedName{Namespace: "kube-system", Name: "gantry-gateway"}
	a := func(z *Zone) []string { return rrs(z.Lookup("hello.default.svc.cluster.local.", mdns.TypeA).Answer) }
	z := NewZone(nil)
	z.SetGatewayService(gw)
	z.SetIngress(ingress("default", "hello", netv1alpha1.IngressVisibilityClusterLocal, "hello.default.svc.cluster.local"))
	if got := z.Lookup("hello.default.svc.cluster.local.", mdns.TypeA); !got.Exists || len(got.Answer) != 0 {
		t.Errorf("before the Service: %+v, want the name with no address", got)
	}
	z.SetService(clusterIPService("kube-system", "gantry-gateway", "10.43.0.20"))
	if diff := cmp.Diff([]string{"hello.default.svc.cluster.local. 5 IN A 10.43.0.20"}, a(z)); diff != "" {
		t.Errorf("with the Service (-want +got):\n%s", diff)
	}
	z.DeleteService(gw)
	if got := a(z); len(got) != 0 {
		t.Errorf("after the Service: %v, want none", got)
	}
	// With a gateway of its own (a server), that is the fallback.
	z = NewZone(gatewayIP)
	z.SetGatewayService(gw)
	z.SetIngress(ingress("default", "hello", netv1alpha1.IngressVisibilityClusterLocal, "hello.default.svc.cluster.local"))
	if diff := cmp.Diff([]string{"hello.default.svc.cluster.local. 5 IN A " + gatewayIP.String()}, a(z)); diff != "" {
		t.Errorf("fallback (-want +got):\n%s", diff)
	}
}
