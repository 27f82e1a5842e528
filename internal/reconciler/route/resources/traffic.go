// Package resources resolves a Route's traffic targets to Revisions and names its URLs: the
// routing state the gateway serves from.
package resources

import (
	"fmt"

	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/pkg/apis"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// Lookup finds the Configurations and Revisions a Route names, in the Route's namespace.
type Lookup interface {
	Configuration(name string) (*servingv1.Configuration, bool)
	Revision(name string) (*servingv1.Revision, bool)
}

// Unresolved says why a target has no Revision to serve yet.
type Unresolved struct {
	Kind, Name string
	// Missing: the object does not exist; Failed: it exists and has failed; otherwise it is
	// not ready yet.
	Missing, Failed bool
}

// Resolve turns the Route's spec.traffic into status.traffic: every target names the Revision
// it serves, with the tag's URL. The first target that cannot be resolved is returned instead.
func Resolve(route *servingv1.Route, domain string, l Lookup) ([]servingv1.TrafficTarget, *Unresolved) {
	out := make([]servingv1.TrafficTarget, 0, len(route.Spec.Traffic))
	for _, t := range route.Spec.Traffic {
		st := servingv1.TrafficTarget{Tag: t.Tag, Percent: t.Percent, LatestRevision: ptr.To(false)}
		if t.ConfigurationName != "" {
			cfg, ok := l.Configuration(t.ConfigurationName)
			if !ok {
				return nil, &Unresolved{Kind: "Configuration", Name: t.ConfigurationName, Missing: true}
			}
			if cfg.Status.LatestReadyRevisionName == "" {
				failed := cfg.Status.GetCondition(servingv1.ConfigurationConditionReady).IsFalse()
				return nil, &Unresolved{Kind: "Configuration", Name: t.ConfigurationName, Failed: failed}
			}
			st.RevisionName, st.LatestRevision = cfg.Status.LatestReadyRevisionName, ptr.To(true)
		} else {
			rev, ok := l.Revision(t.RevisionName)
			if !ok {
				return nil, &Unresolved{Kind: "Revision", Name: t.RevisionName, Missing: true}
			}
			if !rev.IsReady() {
				failed := rev.Status.GetCondition(servingv1.RevisionConditionReady).IsFalse()
				return nil, &Unresolved{Kind: "Revision", Name: t.RevisionName, Failed: failed}
			}
			st.RevisionName = rev.Name
		}
		if t.Tag != "" {
			st.URL = TagURL(t.Tag, route, domain)
		}
		out = append(out, st)
	}
	return out, nil
}

// Host is the Route's host name: <name>.<namespace>.<domain>.
func Host(route *servingv1.Route, domain string) string {
	return fmt.Sprintf("%s.%s.%s", route.Name, route.Namespace, domain)
}

// URL is the Route's external URL.
func URL(route *servingv1.Route, domain string) *apis.URL {
	return &apis.URL{Scheme: "http", Host: Host(route, domain)}
}

// TagURL is the URL that reaches only the tagged target: <tag>-<name>.<namespace>.<domain>.
func TagURL(tag string, route *servingv1.Route, domain string) *apis.URL {
	return &apis.URL{Scheme: "http", Host: fmt.Sprintf("%s-%s.%s.%s", tag, route.Name, route.Namespace, domain)}
}

// ClusterURL is the Route's address inside the cluster.
func ClusterURL(route *servingv1.Route) *apis.URL {
	return &apis.URL{Scheme: "http", Host: fmt.Sprintf("%s.%s.svc.cluster.local", route.Name, route.Namespace)}
}
