package resources

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/pkg/apis"
	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

var errUnreadable = errors.New("the cache is unavailable")

// fakeLookup finds what its maps hold; a name in broken cannot be read.
type fakeLookup struct {
	configs map[string]*servingv1.Configuration
	revs    map[string]*servingv1.Revision
	broken  map[string]bool
}

func (f fakeLookup) Configuration(n string) (*servingv1.Configuration, error) {
	if f.broken[n] {
		return nil, errUnreadable
	}
	if c, ok := f.configs[n]; ok {
		return c, nil
	}
	return nil, apierrors.NewNotFound(servingv1.Resource("configurations"), n)
}

func (f fakeLookup) Revision(n string) (*servingv1.Revision, error) {
	if f.broken[n] {
		return nil, errUnreadable
	}
	if r, ok := f.revs[n]; ok {
		return r, nil
	}
	return nil, apierrors.NewNotFound(servingv1.Resource("revisions"), n)
}

var exampleHosts = Hosts{Network: config.NewNetwork(), Domain: "example.com"}

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
		broken: map[string]bool{"unreadable": true},
	}
	route := func(ts ...servingv1.TrafficTarget) *servingv1.Route {
		return &servingv1.Route{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "ns"}, Spec: servingv1.RouteSpec{Traffic: ts}}
	}
	tests := []struct {
		name       string
		route      *servingv1.Route
		want       []servingv1.TrafficTarget
		unresolved *Unresolved
		err        error
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
	}, {
		name:  "a configuration that cannot be read is not missing",
		route: route(servingv1.TrafficTarget{ConfigurationName: "unreadable", Percent: ptr.To[int64](100)}),
		err:   errUnreadable,
	}, {
		name:  "a revision that cannot be read is not missing",
		route: route(servingv1.TrafficTarget{RevisionName: "unreadable", Percent: ptr.To[int64](100)}),
		err:   errUnreadable,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, unresolved, err := Resolve(tt.route, exampleHosts, l)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if diff := cmp.Diff(tt.unresolved, unresolved); diff != "" {
				t.Fatalf("unresolved (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b *apis.URL) bool { return a.String() == b.String() })); tt.unresolved == nil && diff != "" {
				t.Errorf("traffic (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHosts(t *testing.T) {
	r := &servingv1.Route{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default", Annotations: map[string]string{"team": "blue"}}}
	custom := &config.Network{DomainTemplate: "{{.Name}}-{{.Namespace}}.{{index .Annotations \"team\"}}.{{.Domain}}", TagTemplate: "{{.Name}}--{{.Tag}}"}
	tests := []struct {
		name    string
		hosts   Hosts
		tag     string
		want    string
		wantErr string
	}{
		{name: "default route", hosts: Hosts{Network: config.NewNetwork(), Domain: "localhost"}, want: "http://hello.default.localhost"},
		{name: "default tag", hosts: Hosts{Network: config.NewNetwork(), Domain: "localhost"}, tag: "candidate", want: "http://candidate-hello.default.localhost"},
		{name: "domain-template", hosts: Hosts{Network: custom, Domain: "example.com"}, want: "http://hello-default.blue.example.com"},
		{name: "tag-template inside the domain-template", hosts: Hosts{Network: custom, Domain: "example.com"}, tag: "v2", want: "http://hello--v2-default.blue.example.com"},
		{name: "a template that reads a missing key", hosts: Hosts{Network: &config.Network{DomainTemplate: "{{.Name}}.{{.Nope}}", TagTemplate: config.DefaultTagTemplate}}, wantErr: "domain-template"},
		{name: "a host that is no domain name", hosts: Hosts{Network: &config.Network{DomainTemplate: "{{.Name}}_{{.Namespace}}", TagTemplate: config.DefaultTagTemplate}}, wantErr: `invalid domain name "hello_default"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var u *apis.URL
			var err error
			if tt.tag == "" {
				u, err = tt.hosts.URL(r)
			} else {
				u, err = tt.hosts.TagURL(r, tt.tag)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.String() != tt.want {
				t.Errorf("got %s, want %s", u, tt.want)
			}
		})
	}
	if got, want := ClusterURL(r).String(), "http://hello.default.svc.cluster.local"; got != want {
		t.Errorf("ClusterURL = %s, want %s", got, want)
	}
}
