package resources

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/pkg/apis"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

type fakeLookup struct {
	configs map[string]*servingv1.Configuration
	revs    map[string]*servingv1.Revision
}

func (f fakeLookup) Configuration(n string) (*servingv1.Configuration, bool) {
	c, ok := f.configs[n]
	return c, ok
}

func (f fakeLookup) Revision(n string) (*servingv1.Revision, bool) {
	r, ok := f.revs[n]
	return r, ok
}

func readyRevision(name string) *servingv1.Revision {
	r := &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1}}
	r.Status.ObservedGeneration = 1
	r.Status.InitializeConditions()
	r.Status.MarkResourcesAvailableTrue()
	r.Status.MarkContainerHealthyTrue()
	return r
}

func failedRevision(name string) *servingv1.Revision {
	r := &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1}}
	r.Status.ObservedGeneration = 1
	r.Status.InitializeConditions()
	r.Status.MarkContainerHealthyFalse("ExitCode", "boom")
	return r
}

func TestResolve(t *testing.T) {
	cfg := &servingv1.Configuration{ObjectMeta: metav1.ObjectMeta{Name: "hello"}}
	cfg.Status.LatestReadyRevisionName = "hello-00002"
	pendingCfg := &servingv1.Configuration{ObjectMeta: metav1.ObjectMeta{Name: "pending"}}
	l := fakeLookup{
		configs: map[string]*servingv1.Configuration{"hello": cfg, "pending": pendingCfg},
		revs: map[string]*servingv1.Revision{
			"hello-00001": readyRevision("hello-00001"),
			"hello-00002": readyRevision("hello-00002"),
			"new":         {ObjectMeta: metav1.ObjectMeta{Name: "new"}},
			"broken":      failedRevision("broken"),
		},
	}
	route := func(ts ...servingv1.TrafficTarget) *servingv1.Route {
		return &servingv1.Route{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "ns"}, Spec: servingv1.RouteSpec{Traffic: ts}}
	}
	tests := []struct {
		name       string
		route      *servingv1.Route
		want       []servingv1.TrafficTarget
		unresolved *Unresolved
	}{{
		name: "split with tags",
		route: route(
			servingv1.TrafficTarget{ConfigurationName: "hello", LatestRevision: ptr.To(true), Percent: ptr.To[int64](50), Tag: "latest"},
			servingv1.TrafficTarget{RevisionName: "hello-00001", Percent: ptr.To[int64](50), Tag: "old"},
		),
		want: []servingv1.TrafficTarget{
			{RevisionName: "hello-00002", LatestRevision: ptr.To(true), Percent: ptr.To[int64](50), Tag: "latest",
				URL: &apis.URL{Scheme: "http", Host: "latest-hello.ns.example.com"}},
			{RevisionName: "hello-00001", LatestRevision: ptr.To(false), Percent: ptr.To[int64](50), Tag: "old",
				URL: &apis.URL{Scheme: "http", Host: "old-hello.ns.example.com"}},
		},
	}, {
		name:       "missing configuration",
		route:      route(servingv1.TrafficTarget{ConfigurationName: "nope", Percent: ptr.To[int64](100)}),
		unresolved: &Unresolved{Kind: "Configuration", Name: "nope", Missing: true},
	}, {
		name:       "configuration without a ready revision",
		route:      route(servingv1.TrafficTarget{ConfigurationName: "pending", Percent: ptr.To[int64](100)}),
		unresolved: &Unresolved{Kind: "Configuration", Name: "pending"},
	}, {
		name:       "missing revision",
		route:      route(servingv1.TrafficTarget{RevisionName: "gone", Percent: ptr.To[int64](100)}),
		unresolved: &Unresolved{Kind: "Revision", Name: "gone", Missing: true},
	}, {
		name:       "revision not ready yet",
		route:      route(servingv1.TrafficTarget{RevisionName: "new", Percent: ptr.To[int64](100)}),
		unresolved: &Unresolved{Kind: "Revision", Name: "new"},
	}, {
		name:       "failed revision",
		route:      route(servingv1.TrafficTarget{RevisionName: "broken", Percent: ptr.To[int64](100)}),
		unresolved: &Unresolved{Kind: "Revision", Name: "broken", Failed: true},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, unresolved := Resolve(tt.route, "example.com", l)
			if diff := cmp.Diff(tt.unresolved, unresolved); diff != "" {
				t.Fatalf("unresolved (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b *apis.URL) bool { return a.String() == b.String() })); tt.unresolved == nil && diff != "" {
				t.Errorf("traffic (-want +got):\n%s", diff)
			}
		})
	}
}

func TestURLs(t *testing.T) {
	r := &servingv1.Route{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"}}
	for got, want := range map[string]string{
		URL(r, "localhost").String():                 "http://hello.default.localhost",
		TagURL("candidate", r, "localhost").String(): "http://candidate-hello.default.localhost",
		ClusterURL(r).String():                       "http://hello.default.svc.cluster.local",
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}
