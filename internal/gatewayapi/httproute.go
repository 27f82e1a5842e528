// Package gatewayapi turns Knative's Ingress into Gateway API HTTPRoutes, for clusters that
// already run a Gateway API implementation (cluster mode, `gantry install --ingress
// gateway-api`). The translation gives what knative-extensions/net-gateway-api gives for the
// same Ingress: one HTTPRoute per rule (named by its longest host), a backendRef per split
// with its weight and headers, and exact header matches for tags (Knative-Serving-Tag). The
// Reconciler keeps the HTTPRoutes of every Ingress in step.
package gatewayapi

import (
	"cmp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
)

// Labels the HTTPRoutes carry, Knative's.
const (
	// IngressLabel names the Ingress an HTTPRoute was made from.
	IngressLabel = "networking.internal.knative.dev/ingress"
	// VisibilityLabel is "cluster-local" for a cluster-local rule's route, else empty.
	VisibilityLabel = "networking.knative.dev/visibility"
)

// The ports of a revision's Service that backendRefs name, Knative's service ports: HTTP/1,
// and h2c for a revision whose port is named h2c.
const (
	BackendPort    = 80
	BackendH2CPort = 81
)

// H2C says whether the revision namespace/name speaks h2c (its backendRefs then name
// BackendH2CPort); nil says no revision does.
type H2C func(namespace, name string) bool

// Gateways are the Gateways the HTTPRoutes attach to: External for the rules of visibility
// ExternalIP, Local for the cluster-local ones (net-gateway-api's external and local
// gateways).
type Gateways struct {
	External, Local types.NamespacedName
}

// MakeHTTPRoutes are the HTTPRoutes of ing: one per rule; h2c tells which revisions speak h2c.
func MakeHTTPRoutes(ing *netv1alpha1.Ingress, gw Gateways, h2c H2C) []*gwv1.HTTPRoute {
	out := make([]*gwv1.HTTPRoute, 0, len(ing.Spec.Rules))
	for i := range ing.Spec.Rules {
		if len(ing.Spec.Rules[i].Hosts) == 0 {
			continue
		}
		out = append(out, MakeHTTPRoute(ing, &ing.Spec.Rules[i], gw, h2c))
	}
	return out
}

// LongestHost is the name of a rule's HTTPRoute: the last of its hosts in alphabetical
// order (for a cluster-local rule, the one ending in .svc.cluster.local).
func LongestHost(hosts []string) string {
	return slices.Max(hosts)
}

// MakeHTTPRoute is the HTTPRoute of one rule of ing.
func MakeHTTPRoute(ing *netv1alpha1.Ingress, rule *netv1alpha1.IngressRule, gw Gateways, h2c H2C) *gwv1.HTTPRoute {
	visibility := ""
	parent := gw.External
	if rule.Visibility == netv1alpha1.IngressVisibilityClusterLocal {
		visibility = "cluster-local"
		parent = gw.Local
	}
	labels := map[string]string{}
	for k, v := range ing.Labels {
		labels[k] = v
	}
	labels[IngressLabel] = ing.Name
	labels[VisibilityLabel] = visibility
	var annotations map[string]string
	for k, v := range ing.Annotations {
		if k == corev1.LastAppliedConfigAnnotation {
			continue
		}
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[k] = v
	}
	hosts := slices.Sorted(slices.Values(rule.Hosts))
	hostnames := make([]gwv1.Hostname, len(hosts))
	for i, h := range hosts {
		hostnames[i] = gwv1.Hostname(h)
	}
	return &gwv1.HTTPRoute{
		TypeMeta: metav1.TypeMeta{APIVersion: gwv1.GroupVersion.String(), Kind: "HTTPRoute"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        LongestHost(hosts),
			Namespace:   ing.Namespace,
			Labels:      labels,
			Annotations: annotations,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion:         netv1alpha1.SchemeGroupVersion.String(),
				Kind:               "Ingress",
				Name:               ing.Name,
				UID:                ing.UID,
				Controller:         ptr.To(true),
				BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: gwv1.HTTPRouteSpec{
			CommonRouteSpec: gwv1.CommonRouteSpec{ParentRefs: []gwv1.ParentReference{{
				Group:     ptr.To(gwv1.Group(gwv1.GroupVersion.Group)),
				Kind:      ptr.To(gwv1.Kind("Gateway")),
				Namespace: ptr.To(gwv1.Namespace(parent.Namespace)),
				Name:      gwv1.ObjectName(parent.Name),
			}}},
			Hostnames: hostnames,
			Rules:     makeRules(rule, h2c),
		},
	}
}

func makeRules(rule *netv1alpha1.IngressRule, h2c H2C) []gwv1.HTTPRouteRule {
	rules := []gwv1.HTTPRouteRule{}
	if rule.HTTP == nil {
		return rules
	}
	for _, path := range rule.HTTP.Paths {
		var filters []gwv1.HTTPRouteFilter
		if path.AppendHeaders != nil {
			filters = []gwv1.HTTPRouteFilter{setHeaders(path.AppendHeaders)}
		}
		backends := make([]gwv1.HTTPBackendRef, 0, len(path.Splits))
		for _, split := range path.Splits {
			port := gwv1.PortNumber(BackendPort)
			if h2c != nil && h2c(split.ServiceNamespace, split.ServiceName) {
				port = BackendH2CPort
			}
			backends = append(backends, gwv1.HTTPBackendRef{
				BackendRef: gwv1.BackendRef{
					BackendObjectReference: gwv1.BackendObjectReference{
						Group: ptr.To(gwv1.Group("")),
						Kind:  ptr.To(gwv1.Kind("Service")),
						Name:  gwv1.ObjectName(split.ServiceName),
						Port:  ptr.To(port),
					},
					Weight: ptr.To(int32(split.Percent)), //nolint:gosec // 0-100, validated
				},
				// Always a header filter, empty without headers, as net-gateway-api writes it.
				Filters: []gwv1.HTTPRouteFilter{setHeaders(split.AppendHeaders)},
			})
		}
		var headers []gwv1.HTTPHeaderMatch
		for name, m := range path.Headers {
			headers = append(headers, gwv1.HTTPHeaderMatch{
				Type:  ptr.To(gwv1.HeaderMatchExact),
				Name:  gwv1.HTTPHeaderName(name),
				Value: m.Exact,
			})
		}
		// Maps have no order: by name, descending (net-gateway-api's order).
		slices.SortFunc(headers, func(a, b gwv1.HTTPHeaderMatch) int { return strings.Compare(string(b.Name), string(a.Name)) })
		rules = append(rules, gwv1.HTTPRouteRule{
			Matches: []gwv1.HTTPRouteMatch{{
				Path:    &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: ptr.To("/")},
				Headers: headers,
			}},
			Filters:     filters,
			BackendRefs: backends,
		})
	}
	return rules
}

// setHeaders is a RequestHeaderModifier that sets headers, sorted by name.
func setHeaders(h map[string]string) gwv1.HTTPRouteFilter {
	set := make([]gwv1.HTTPHeader, 0, len(h))
	for k, v := range h {
		set = append(set, gwv1.HTTPHeader{Name: gwv1.HTTPHeaderName(k), Value: v})
	}
	slices.SortFunc(set, func(a, b gwv1.HTTPHeader) int { return cmp.Compare(a.Name, b.Name) })
	return gwv1.HTTPRouteFilter{
		Type:                  gwv1.HTTPRouteFilterRequestHeaderModifier,
		RequestHeaderModifier: &gwv1.HTTPHeaderFilter{Set: set},
	}
}
