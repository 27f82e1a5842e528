package resources

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

func TestRoutedRevisions(t *testing.T) {
	latest := func(name, created string) *servingv1.Configuration {
		cfg := &servingv1.Configuration{ObjectMeta: metav1.ObjectMeta{Name: name}}
		cfg.Status.LatestCreatedRevisionName = created
		return cfg
	}
	rt := &servingv1.Route{
		Spec: servingv1.RouteSpec{Traffic: []servingv1.TrafficTarget{
			{ConfigurationName: "web", LatestRevision: ptr.To(true), Percent: ptr.To[int64](90)},
			{RevisionName: "web-00001", Percent: ptr.To[int64](10)},
			{ConfigurationName: "gone", LatestRevision: ptr.To(true)},
		}},
		Status: servingv1.RouteStatus{RouteStatusFields: servingv1.RouteStatusFields{Traffic: []servingv1.TrafficTarget{
			{RevisionName: "web-00002", LatestRevision: ptr.To(true), Percent: ptr.To[int64](90)},
			{RevisionName: "web-00001", Percent: ptr.To[int64](10)},
		}}},
	}
	l := fakeLookup{configs: map[string]*servingv1.Configuration{"web": latest("web", "web-00003")}}
	got, err := RoutedRevisions(rt, l)
	if err != nil {
		t.Fatal(err)
	}
	// web-00002 serves now; web-00003 is created and will take over once ready.
	want := map[string]bool{"web-00001": true, "web-00002": true, "web-00003": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RoutedRevisions (-want +got):\n%s", diff)
	}

	l.broken = map[string]bool{"web": true}
	if _, err := RoutedRevisions(rt, l); !errors.Is(err, errUnreadable) {
		t.Errorf("RoutedRevisions with an unreadable configuration = %v, want %v", err, errUnreadable)
	}
}

func TestMarkRouted(t *testing.T) {
	now := time.Date(2026, 11, 28, 11, 30, 0, 0, time.FixedZone("CET", 3600))
	const stamp = "2026-11-28T10:30:00Z"
	const earlier = "2026-11-27T08:00:00Z"
	rev := func(state, routes string) *servingv1.Revision {
		r := &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Name: "web-00001"}}
		if state != "" {
			r.Labels = map[string]string{servingv1.RoutingStateLabelKey: state}
			r.Annotations = map[string]string{servingv1.RoutingStateModifiedAnnotationKey: earlier}
		}
		if routes != "" {
			r.Annotations[servingv1.RoutesAnnotationKey] = routes
		}
		return r
	}
	meta := func(state, routes, modified string) metav1.ObjectMeta {
		m := metav1.ObjectMeta{
			Name:        "web-00001",
			Labels:      map[string]string{servingv1.RoutingStateLabelKey: state},
			Annotations: map[string]string{servingv1.RoutingStateModifiedAnnotationKey: modified},
		}
		if routes != "" {
			m.Annotations[servingv1.RoutesAnnotationKey] = routes
		}
		return m
	}
	for _, tt := range []struct {
		name        string
		rev         *servingv1.Revision
		route       string
		routed      bool
		want        metav1.ObjectMeta
		wantChanged bool
	}{
		{"first routed: active, stamped", rev("", ""), "web", true, meta("active", "web", stamp), true},
		{"routed again: nothing changes", rev("active", "web"), "web", true, meta("active", "web", earlier), false},
		{"a second route joins: still active, not restamped", rev("active", "web"), "other", true, meta("active", "other,web", earlier), true},
		{"the last route leaves: reserve, stamped", rev("active", "web"), "web", false, meta("reserve", "", stamp), true},
		{"one of two routes leaves: still active", rev("active", "other,web"), "web", false, meta("active", "other", earlier), true},
		{"back in the path: active again", rev("reserve", ""), "web", true, meta("active", "web", stamp), true},
		{"pending, now routed", rev("pending", ""), "web", true, meta("active", "web", stamp), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			changed := MarkRouted(tt.rev, tt.route, tt.routed, now)
			if changed != tt.wantChanged {
				t.Errorf("MarkRouted() = %v, want %v", changed, tt.wantChanged)
			}
			if diff := cmp.Diff(tt.want, tt.rev.ObjectMeta); diff != "" {
				t.Errorf("metadata (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRoutesOf(t *testing.T) {
	r := &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{servingv1.RoutesAnnotationKey: "b,a,b"}}}
	if diff := cmp.Diff([]string{"a", "b"}, RoutesOf(r)); diff != "" {
		t.Errorf("RoutesOf (-want +got):\n%s", diff)
	}
	if got := RoutesOf(&servingv1.Revision{}); got != nil {
		t.Errorf("RoutesOf(no annotation) = %v, want none", got)
	}
}
