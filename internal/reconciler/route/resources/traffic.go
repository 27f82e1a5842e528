// Package resources resolves a Route's traffic targets to Revisions and names its URLs: the
// routing state the gateway serves from. It also decides how a Revision records the Routes
// that send it traffic (its routingState label, which the autoscaler reads as reachability).
package resources

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/pkg/apis"
	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// Lookup finds the Configurations and Revisions a Route names, in the Route's namespace. An
// object that does not exist is an error for which apierrors.IsNotFound is true; any other
// error means the object could not be read.
type Lookup interface {
	Configuration(name string) (*servingv1.Configuration, error)
	Revision(name string) (*servingv1.Revision, error)
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
// A target that cannot be read, or a tag whose host cannot be named, is an error: nothing is
// known about that target, so nothing is decided.
func Resolve(route *servingv1.Route, hosts Hosts, l Lookup) ([]servingv1.TrafficTarget, *Unresolved, error) {
	out := make([]servingv1.TrafficTarget, 0, len(route.Spec.Traffic))
	for _, t := range route.Spec.Traffic {
		st := servingv1.TrafficTarget{Tag: t.Tag, Percent: t.Percent, LatestRevision: ptr.To(false)}
		if t.ConfigurationName != "" {
			cfg, err := l.Configuration(t.ConfigurationName)
			switch {
			case apierrors.IsNotFound(err):
				return nil, &Unresolved{Kind: "Configuration", Name: t.ConfigurationName, Missing: true}, nil
			case err != nil:
				return nil, nil, fmt.Errorf("reading configuration %s: %w", t.ConfigurationName, err)
			case cfg.Status.LatestReadyRevisionName == "":
				failed := cfg.Status.GetCondition(servingv1.ConfigurationConditionReady).IsFalse()
				return nil, &Unresolved{Kind: "Configuration", Name: t.ConfigurationName, Failed: failed}, nil
			}
			st.RevisionName, st.LatestRevision = cfg.Status.LatestReadyRevisionName, ptr.To(true)
		} else {
			rev, err := l.Revision(t.RevisionName)
			switch {
			case apierrors.IsNotFound(err):
				return nil, &Unresolved{Kind: "Revision", Name: t.RevisionName, Missing: true}, nil
			case err != nil:
				return nil, nil, fmt.Errorf("reading revision %s: %w", t.RevisionName, err)
			case !rev.IsReady():
				failed := rev.Status.GetCondition(servingv1.RevisionConditionReady).IsFalse()
				return nil, &Unresolved{Kind: "Revision", Name: t.RevisionName, Failed: failed}, nil
			}
			st.RevisionName = rev.Name
		}
		if t.Tag != "" {
			u, err := hosts.TagURL(route, t.Tag)
			if err != nil {
				return nil, nil, err
			}
			st.URL = u
		}
		out = append(out, st)
	}
	return out, nil, nil
}

// Hosts names a Route's hosts: Knative's domain-template and tag-template (config-network)
// over the cluster's domain.
type Hosts struct {
	Network *config.Network
	Domain  string
}

// URL is the Route's external URL; by default http://<name>.<namespace>.<domain>.
func (h Hosts) URL(route *servingv1.Route) (*apis.URL, error) {
	return h.url(route, route.Name)
}

// TagURL is the URL that reaches only the tagged target; by default
// http://<tag>-<name>.<namespace>.<domain>.
func (h Hosts) TagURL(route *servingv1.Route, tag string) (*apis.URL, error) {
	name, err := h.Network.TagName(tag, route.Name)
	if err != nil {
		return nil, fmt.Errorf("naming the host of tag %s: tag-template: %w", tag, err)
	}
	return h.url(route, name)
}

func (h Hosts) url(route *servingv1.Route, name string) (*apis.URL, error) {
	host, err := h.Network.Host(name, route.Namespace, h.Domain, route.Annotations)
	if err != nil {
		return nil, fmt.Errorf("naming the host of %s: domain-template: %w", name, err)
	}
	if errs := validation.IsFullyQualifiedDomainName(field.NewPath("url"), host); len(errs) > 0 {
		return nil, fmt.Errorf("invalid domain name %q: %w", host, errs.ToAggregate())
	}
	return &apis.URL{Scheme: "http", Host: host}, nil
}

// ClusterURL is the Route's address inside the cluster.
func ClusterURL(route *servingv1.Route) *apis.URL {
	return &apis.URL{Scheme: "http", Host: fmt.Sprintf("%s.%s.svc.cluster.local", route.Name, route.Namespace)}
}
