package resources

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/reconciler/kmeta"
	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// TagHeader is the header that picks a tagged target when tag-header-based-routing is on.
const TagHeader = "Knative-Serving-Tag"

// IsClusterLocal reports whether the Route answers only inside the cluster
// (networking.knative.dev/visibility: cluster-local).
func IsClusterLocal(route *servingv1.Route) bool {
	return route.Labels[servingv1.VisibilityLabelKey] == servingv1.VisibilityClusterLocal
}

// ClusterHosts are the names a Route (or the tag part of one, "<tag>-<route>") answers to from
// pods: <name>.<ns>.svc.cluster.local and its short forms.
func ClusterHosts(name, namespace string) []string {
	return []string{
		name + "." + namespace + ".svc.cluster.local",
		name + "." + namespace + ".svc",
		name + "." + namespace,
	}
}

// MakeIngress is the Ingress that serves route's resolved traffic: its hosts (external unless
// the Route is cluster-local, and the cluster names always) split over the revisions by
// percent; every tag's hosts reach only its revision; with tagHeader, a request carrying the
// Knative-Serving-Tag header of a tag goes to that tag's revision.
func MakeIngress(route *servingv1.Route, traffic []servingv1.TrafficTarget, hosts Hosts, tagHeader bool) (*netv1alpha1.Ingress, error) {
	main := splits(route.Namespace, traffic)
	var paths []netv1alpha1.HTTPIngressPath
	if tagHeader {
		for _, t := range traffic {
			if t.Tag != "" {
				paths = append(paths, netv1alpha1.HTTPIngressPath{
					Headers: map[string]netv1alpha1.HeaderMatch{TagHeader: {Exact: t.Tag}},
					Splits:  []netv1alpha1.IngressBackendSplit{split(route.Namespace, t.RevisionName, 100)},
				})
			}
		}
	}
	paths = append(paths, netv1alpha1.HTTPIngressPath{Splits: main})

	var rules []netv1alpha1.IngressRule
	addRules := func(name string, external string, paths []netv1alpha1.HTTPIngressPath) {
		if external != "" {
			rules = append(rules, netv1alpha1.IngressRule{
				Hosts: []string{external}, Visibility: netv1alpha1.IngressVisibilityExternalIP,
				HTTP: &netv1alpha1.HTTPIngressRuleValue{Paths: paths},
			})
		}
		rules = append(rules, netv1alpha1.IngressRule{
			Hosts: ClusterHosts(name, route.Namespace), Visibility: netv1alpha1.IngressVisibilityClusterLocal,
			HTTP: &netv1alpha1.HTTPIngressRuleValue{Paths: paths},
		})
	}
	external := ""
	if !IsClusterLocal(route) {
		u, err := hosts.URL(route)
		if err != nil {
			return nil, err
		}
		external = u.Host
	}
	addRules(route.Name, external, paths)
	for _, t := range traffic {
		if t.Tag == "" {
			continue
		}
		name, err := hosts.Network.TagName(t.Tag, route.Name)
		if err != nil {
			return nil, fmt.Errorf("naming the host of tag %s: tag-template: %w", t.Tag, err)
		}
		tagExternal := ""
		if !IsClusterLocal(route) {
			u, err := hosts.TagURL(route, t.Tag)
			if err != nil {
				return nil, err
			}
			tagExternal = u.Host
		}
		addRules(name, tagExternal, []netv1alpha1.HTTPIngressPath{{
			Splits: []netv1alpha1.IngressBackendSplit{split(route.Namespace, t.RevisionName, 100)},
		}})
	}
	return &netv1alpha1.Ingress{
		ObjectMeta: metav1.ObjectMeta{
			Name:            route.Name,
			Namespace:       route.Namespace,
			Labels:          kmeta.UnionMaps(route.Labels, map[string]string{servingv1.RouteLabelKey: route.Name}),
			Annotations:     kmeta.PropagatedAnnotations(route.Annotations),
			OwnerReferences: []metav1.OwnerReference{kmeta.OwnerRef(route, route.GetGroupVersionKind())},
		},
		Spec: netv1alpha1.IngressSpec{Rules: rules},
	}, nil
}

// splits sums the shares of each revision (two targets may name one) in a stable order and
// leaves out revisions with no share.
func splits(namespace string, traffic []servingv1.TrafficTarget) []netv1alpha1.IngressBackendSplit {
	share := map[string]int{}
	var order []string
	for _, t := range traffic {
		p := int(ptr.Deref(t.Percent, 0))
		if p == 0 {
			continue
		}
		if _, seen := share[t.RevisionName]; !seen {
			order = append(order, t.RevisionName)
		}
		share[t.RevisionName] += p
	}
	slices.Sort(order)
	out := make([]netv1alpha1.IngressBackendSplit, 0, len(order))
	for _, rev := range order {
		out = append(out, split(namespace, rev, share[rev]))
	}
	return out
}

func split(namespace, revision string, percent int) netv1alpha1.IngressBackendSplit {
	return netv1alpha1.IngressBackendSplit{
		IngressBackend: netv1alpha1.IngressBackend{ServiceNamespace: namespace, ServiceName: revision},
		Percent:        percent,
		AppendHeaders: map[string]string{
			netv1alpha1.RevisionHeaderName:  revision,
			netv1alpha1.NamespaceHeaderName: namespace,
		},
	}
}
