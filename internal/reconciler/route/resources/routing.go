package resources

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"

	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// RoutedRevisions names the Revisions route sends traffic to or is about to: those its status
// and its spec name, and, for each Configuration it follows, that one's latest created
// Revision, so a new Revision is counted as routed before it becomes ready and takes the
// traffic over. A Configuration that does not exist adds nothing; one that cannot be read is
// an error.
func RoutedRevisions(route *servingv1.Route, l Lookup) (map[string]bool, error) {
	names := map[string]bool{}
	for _, t := range slices.Concat(route.Status.Traffic, route.Spec.Traffic) {
		if t.RevisionName != "" {
			names[t.RevisionName] = true
		}
		if t.ConfigurationName == "" || !ptr.Deref(t.LatestRevision, true) {
			continue
		}
		cfg, err := l.Configuration(t.ConfigurationName)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("reading configuration %s: %w", t.ConfigurationName, err)
		case cfg.Status.LatestCreatedRevisionName != "":
			names[cfg.Status.LatestCreatedRevisionName] = true
		}
	}
	return names, nil
}

// RoutesOf returns the Routes rev's routes annotation names, sorted.
func RoutesOf(rev *servingv1.Revision) []string {
	v := rev.Annotations[servingv1.RoutesAnnotationKey]
	if v == "" {
		return nil
	}
	routes := strings.Split(v, ",")
	slices.Sort(routes)
	return slices.Compact(routes)
}

// MarkRouted records on rev whether route sends it traffic, and reports whether rev changed.
// The routes annotation lists every Route that does, so a Revision two Routes share stays
// routed until neither does; the routingState label follows it, active while it names a Route
// and reserve once it names none, and the routingStateModified annotation is when the label
// last changed (RFC 3339, UTC). The autoscaler reads the label as the revision's reachability.
func MarkRouted(rev *servingv1.Revision, route string, routed bool, now time.Time) bool {
	routes := RoutesOf(rev)
	has := slices.Contains(routes, route)
	switch {
	case routed && !has:
		routes = append(routes, route)
		slices.Sort(routes)
	case !routed && has:
		routes = slices.DeleteFunc(routes, func(r string) bool { return r == route })
	}
	labels, annotations := maps.Clone(rev.Labels), maps.Clone(rev.Annotations)
	if len(routes) == 0 {
		delete(rev.Annotations, servingv1.RoutesAnnotationKey)
	} else {
		rev.Annotations = setKey(rev.Annotations, servingv1.RoutesAnnotationKey, strings.Join(routes, ","))
	}
	state := servingv1.RoutingStateReserve
	if len(routes) > 0 {
		state = servingv1.RoutingStateActive
	}
	if rev.Labels[servingv1.RoutingStateLabelKey] != state {
		rev.Labels = setKey(rev.Labels, servingv1.RoutingStateLabelKey, state)
		rev.Annotations = setKey(rev.Annotations, servingv1.RoutingStateModifiedAnnotationKey, now.UTC().Format(time.RFC3339))
	}
	return !maps.Equal(labels, rev.Labels) || !maps.Equal(annotations, rev.Annotations)
}

func setKey(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}
