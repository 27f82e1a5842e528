package gatewayapi

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
)

var testGateways = Gateways{
	External: types.NamespacedName{Namespace: "gateways", Name: "external"},
	Local:    types.NamespacedName{Namespace: "gateways", Name: "local"},
}

// The expectations below are written by hand from net-gateway-api's MakeHTTPRoute
// (pkg/reconciler/ingress/resources/httproute.go): the shapes it gives for each input,
// independent of this package's code.

func split(rev string, percent int) netv1alpha1.IngressBackendSplit {
	return netv1alpha1.IngressBackendSplit{
		IngressBackend: netv1alpha1.IngressBackend{ServiceNamespace: "default", ServiceName: rev},
		Percent:        percent,
		AppendHeaders:  map[string]string{"Knative-Serving-Revision": rev, "Knative-Serving-Namespace": "default"},
	}
}

func wantBackend(rev string, weight int32) gwv1.HTTPBackendRef {
	return gwv1.HTTPBackendRef{
		BackendRef: gwv1.BackendRef{
			BackendObjectReference: gwv1.BackendObjectReference{
				Group: ptr.To(gwv1.Group("")), Kind: ptr.To(gwv1.Kind("Service")),
				Name: gwv1.ObjectName(rev), Port: ptr.To(gwv1.PortNumber(80)),
			},
			Weight: ptr.To(weight),
		},
		Filters: []gwv1.HTTPRouteFilter{{
			Type: gwv1.HTTPRouteFilterRequestHeaderModifier,
			RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{
				{Name: "Knative-Serving-Namespace", Value: "default"},
				{Name: "Knative-Serving-Revision", Value: rev},
			}},
		}},
	}
}

func wantMatch(headers ...gwv1.HTTPHeaderMatch) []gwv1.HTTPRouteMatch {
	return []gwv1.HTTPRouteMatch{{
		Path:    &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: ptr.To("/")},
		Headers: headers,
	}}
}

func exact(name, value string) gwv1.HTTPHeaderMatch {
	return gwv1.HTTPHeaderMatch{Type: ptr.To(gwv1.HeaderMatchExact), Name: gwv1.HTTPHeaderName(name), Value: value}
}

func wantRoute(name, visibility string, parent string, hosts []gwv1.Hostname, rules ...gwv1.HTTPRouteRule) *gwv1.HTTPRoute {
	return &gwv1.HTTPRoute{
		TypeMeta: metav1.TypeMeta{APIVersion: "gateway.networking.k8s.io/v1", Kind: "HTTPRoute"},
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "default",
			Labels: map[string]string{
				"serving.knative.dev/route":               "hello",
				"networking.internal.knative.dev/ingress": "hello",
				"networking.knative.dev/visibility":       visibility,
			},
			Annotations: map[string]string{"serving.knative.dev/creator": "someone"},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "networking.internal.knative.dev/v1alpha1", Kind: "Ingress", Name: "hello", UID: "uid-1",
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{
				Group: ptr.To(gwv1.Group("gateway.networking.k8s.io")), Kind: ptr.To(gwv1.Kind("Gateway")),
				Namespace: ptr.To(gwv1.Namespace("gateways")), Name: gwv1.ObjectName(parent),
			}}},
			Hostnames: hosts,
			Rules:     rules,
		},
	}
}

func ingress(rules ...netv1alpha1.IngressRule) *netv1alpha1.Ingress {
	return &netv1alpha1.Ingress{
		ObjectMeta: metav1.ObjectMeta{
			Name: "hello", Namespace: "default", UID: "uid-1",
			Labels: map[string]string{"serving.knative.dev/route": "hello"},
			Annotations: map[string]string{
				"serving.knative.dev/creator":      "someone",
				corev1.LastAppliedConfigAnnotation: "{}",
			},
		},
		Spec: netv1alpha1.IngressSpec{Rules: rules},
	}
}

func TestMakeHTTPRoutes(t *testing.T) {
	tagPath := netv1alpha1.HTTPIngressPath{
		Headers: map[string]netv1alpha1.HeaderMatch{"Knative-Serving-Tag": {Exact: "two"}},
		Splits:  []netv1alpha1.IngressBackendSplit{split("hello-00002", 100)},
	}
	mainPath := netv1alpha1.HTTPIngressPath{Splits: []netv1alpha1.IngressBackendSplit{split("hello-00001", 50), split("hello-00002", 50)}}
	h2cBackend := wantBackend("hello-00002", 50)
	h2cBackend.Port = ptr.To(gwv1.PortNumber(81))
	for _, tc := range []struct {
		name string
		ing  *netv1alpha1.Ingress
		h2c  H2C
		want []*gwv1.HTTPRoute
	}{{
		name: "one revision, external and cluster-local",
		ing: ingress(
			netv1alpha1.IngressRule{Hosts: []string{"hello.default.example.com"}, Visibility: netv1alpha1.IngressVisibilityExternalIP,
				HTTP: &netv1alpha1.HTTPIngressRuleValue{Paths: []netv1alpha1.HTTPIngressPath{{Splits: []netv1alpha1.IngressBackendSplit{split("hello-00001", 100)}}}}},
			netv1alpha1.IngressRule{Hosts: []string{"hello.default.svc.cluster.local", "hello.default.svc", "hello.default"}, Visibility: netv1alpha1.IngressVisibilityClusterLocal,
				HTTP: &netv1alpha1.HTTPIngressRuleValue{Paths: []netv1alpha1.HTTPIngressPath{{Splits: []netv1alpha1.IngressBackendSplit{split("hello-00001", 100)}}}}},
		),
		want: []*gwv1.HTTPRoute{
			wantRoute("hello.default.example.com", "", "external", []gwv1.Hostname{"hello.default.example.com"},
				gwv1.HTTPRouteRule{Matches: wantMatch(), BackendRefs: []gwv1.HTTPBackendRef{wantBackend("hello-00001", 100)}}),
			// Hosts sorted; the route is named by the last.
			wantRoute("hello.default.svc.cluster.local", "cluster-local", "local", []gwv1.Hostname{"hello.default", "hello.default.svc", "hello.default.svc.cluster.local"},
				gwv1.HTTPRouteRule{Matches: wantMatch(), BackendRefs: []gwv1.HTTPBackendRef{wantBackend("hello-00001", 100)}}),
		},
	}, {
		name: "50/50 split with a tag: header match first, weighted backends, the tag's own host",
		ing: ingress(
			netv1alpha1.IngressRule{Hosts: []string{"hello.default.example.com"}, Visibility: netv1alpha1.IngressVisibilityExternalIP,
				HTTP: &netv1alpha1.HTTPIngressRuleValue{Paths: []netv1alpha1.HTTPIngressPath{tagPath, mainPath}}},
			netv1alpha1.IngressRule{Hosts: []string{"two-hello.default.example.com"}, Visibility: netv1alpha1.IngressVisibilityExternalIP,
				HTTP: &netv1alpha1.HTTPIngressRuleValue{Paths: []netv1alpha1.HTTPIngressPath{{Splits: []netv1alpha1.IngressBackendSplit{split("hello-00002", 100)}}}}},
		),
		want: []*gwv1.HTTPRoute{
			wantRoute("hello.default.example.com", "", "external", []gwv1.Hostname{"hello.default.example.com"},
				gwv1.HTTPRouteRule{Matches: wantMatch(exact("Knative-Serving-Tag", "two")), BackendRefs: []gwv1.HTTPBackendRef{wantBackend("hello-00002", 100)}},
				gwv1.HTTPRouteRule{Matches: wantMatch(), BackendRefs: []gwv1.HTTPBackendRef{wantBackend("hello-00001", 50), wantBackend("hello-00002", 50)}},
			),
			wantRoute("two-hello.default.example.com", "", "external", []gwv1.Hostname{"two-hello.default.example.com"},
				gwv1.HTTPRouteRule{Matches: wantMatch(), BackendRefs: []gwv1.HTTPBackendRef{wantBackend("hello-00002", 100)}}),
		},
	}, {
		name: "an h2c revision beside an HTTP/1 one: its backendRef names Knative's h2c port, 81",
		ing: ingress(netv1alpha1.IngressRule{Hosts: []string{"hello.default.example.com"}, Visibility: netv1alpha1.IngressVisibilityExternalIP,
			HTTP: &netv1alpha1.HTTPIngressRuleValue{Paths: []netv1alpha1.HTTPIngressPath{mainPath}}}),
		h2c: func(ns, name string) bool { return ns == "default" && name == "hello-00002" },
		want: []*gwv1.HTTPRoute{
			wantRoute("hello.default.example.com", "", "external", []gwv1.Hostname{"hello.default.example.com"},
				gwv1.HTTPRouteRule{Matches: wantMatch(), BackendRefs: []gwv1.HTTPBackendRef{wantBackend("hello-00001", 50), h2cBackend}}),
		},
	}, {
		name: "path headers: a set filter before the backends, header matches by name descending",
		ing: ingress(netv1alpha1.IngressRule{Hosts: []string{"hello.default.example.com"}, Visibility: netv1alpha1.IngressVisibilityExternalIP,
			HTTP: &netv1alpha1.HTTPIngressRuleValue{Paths: []netv1alpha1.HTTPIngressPath{{
				Headers:       map[string]netv1alpha1.HeaderMatch{"A-Header": {Exact: "a"}, "Z-Header": {Exact: "z"}, "M-Header": {Exact: "m"}},
				AppendHeaders: map[string]string{"Y": "2", "X": "1"},
				Splits:        []netv1alpha1.IngressBackendSplit{split("hello-00001", 100)},
			}}}}),
		want: []*gwv1.HTTPRoute{
			wantRoute("hello.default.example.com", "", "external", []gwv1.Hostname{"hello.default.example.com"},
				gwv1.HTTPRouteRule{
					Matches: wantMatch(exact("Z-Header", "z"), exact("M-Header", "m"), exact("A-Header", "a")),
					Filters: []gwv1.HTTPRouteFilter{{
						Type:                  gwv1.HTTPRouteFilterRequestHeaderModifier,
						RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: []gwv1.HTTPHeader{{Name: "X", Value: "1"}, {Name: "Y", Value: "2"}}},
					}},
					BackendRefs: []gwv1.HTTPBackendRef{wantBackend("hello-00001", 100)},
				}),
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got := MakeHTTPRoutes(tc.ing, testGateways, tc.h2c)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("HTTPRoutes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMakeHTTPRoutesLeavesIngressAlone(t *testing.T) {
	hosts := []string{"b.example.com", "a.example.com"}
	ing := ingress(netv1alpha1.IngressRule{Hosts: hosts, HTTP: &netv1alpha1.HTTPIngressRuleValue{}})
	routes := MakeHTTPRoutes(ing, testGateways, nil)
	if len(routes) != 1 || routes[0].Name != "b.example.com" {
		t.Fatalf("routes %v", routes)
	}
	if diff := cmp.Diff([]string{"b.example.com", "a.example.com"}, ing.Spec.Rules[0].Hosts); diff != "" {
		t.Errorf("the Ingress's hosts changed (-want +got):\n%s", diff)
	}
}
