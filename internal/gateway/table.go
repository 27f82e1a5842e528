package gateway

import (
	"math/rand/v2"
	"slices"
	"strings"

	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
)

// table is the routing state built from every Ingress: host → rule. It is immutable once
// built; the gateway swaps in a new one on each change.
type table struct {
	hosts map[string]*rule
}

// rule is what one host serves.
type rule struct {
	visibility netv1alpha1.IngressVisibility
	paths      []netv1alpha1.HTTPIngressPath
}

// buildTable makes a table from ingresses. Two Ingresses claiming one host: the older one
// (then the first by namespace/name) keeps it.
func buildTable(ingresses []netv1alpha1.Ingress) *table {
	slices.SortFunc(ingresses, func(a, b netv1alpha1.Ingress) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	t := &table{hosts: map[string]*rule{}}
	for _, ing := range ingresses {
		if ing.DeletionTimestamp != nil {
			continue
		}
		for _, r := range ing.Spec.Rules {
			if r.HTTP == nil {
				continue
			}
			for _, h := range r.Hosts {
				h = strings.ToLower(h)
				if _, taken := t.hosts[h]; !taken {
					t.hosts[h] = &rule{visibility: r.Visibility, paths: r.HTTP.Paths}
				}
			}
		}
	}
	return t
}

// lookup finds the rule for host; fromPods says whether the request came from the pods' side,
// where cluster-local hosts answer too.
func (t *table) lookup(host string, fromPods bool) *rule {
	r := t.hosts[strings.ToLower(host)]
	if r == nil || (r.visibility == netv1alpha1.IngressVisibilityClusterLocal && !fromPods) {
		return nil
	}
	return r
}

// choose picks the path whose headers the request carries (the first such), then a backend of
// it by the splits' percentages; roll is a number in [0, 100).
func (r *rule) choose(h headerGetter, roll int) (*netv1alpha1.HTTPIngressPath, *netv1alpha1.IngressBackendSplit) {
	for i := range r.paths {
		p := &r.paths[i]
		if !headersMatch(p.Headers, h) || len(p.Splits) == 0 {
			continue
		}
		for j := range p.Splits {
			roll -= p.Splits[j].Percent
			if roll < 0 {
				return p, &p.Splits[j]
			}
		}
		return p, &p.Splits[len(p.Splits)-1]
	}
	return nil, nil
}

// headerGetter reads a request's header: an http.Header, or the fast path's request.
type headerGetter interface{ Get(name string) string }

func headersMatch(want map[string]netv1alpha1.HeaderMatch, h headerGetter) bool {
	for k, m := range want {
		if h.Get(k) != m.Exact {
			return false
		}
	}
	return true
}

func roll() int { return rand.IntN(100) }
