package route

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/gantry-run/gantry/internal/reconciler/reconcilertest"
	"github.com/gantry-run/gantry/pkg/apis"
	"github.com/gantry-run/gantry/pkg/apis/config"
	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

const ns = "ns"

func route(traffic ...servingv1.TrafficTarget) *servingv1.Route {
	return &servingv1.Route{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: ns, Generation: 1},
		Spec:       servingv1.RouteSpec{Traffic: traffic},
	}
}

func readyRevision(name string) *servingv1.Revision {
	rev := &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Generation: 1}}
	rev.Status.ObservedGeneration = 1
	rev.Status.InitializeConditions()
	rev.Status.MarkResourcesAvailableTrue()
	rev.Status.MarkContainerHealthyTrue()
	return rev
}

func readyConfiguration(name, latestReady string) *servingv1.Configuration {
	cfg := &servingv1.Configuration{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Generation: 1}}
	cfg.Status.InitializeConditions()
	cfg.Status.SetLatestCreatedRevisionName(latestReady)
	cfg.Status.SetLatestReadyRevisionName(latestReady)
	return cfg
}

var errUnreadable = errors.New("etcdserver: request timed out")

// failRevisionReads makes every Get of a Revision fail as a server that cannot answer does.
var failRevisionReads = interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*servingv1.Revision); ok {
		return errUnreadable
	}
	return c.Get(ctx, key, obj, opts...)
}}

func TestReconcile(t *testing.T) {
	urlOf := func(host string) *apis.URL { return &apis.URL{Scheme: "http", Host: host} }
	assigned := route(servingv1.TrafficTarget{RevisionName: "hello-00001", Percent: ptr.To[int64](100)})
	assigned.Status.InitializeConditions()
	assigned.Status.MarkTrafficAssigned()
	assigned.Status.Traffic = []servingv1.TrafficTarget{{RevisionName: "hello-00001", Percent: ptr.To[int64](100), LatestRevision: ptr.To(false)}}

	tests := []struct {
		name    string
		objs    []client.Object
		funcs   interceptor.Funcs
		network *config.Network
		wantErr error
		// want* describe the stored Route after Reconcile.
		wantURL     *apis.URL
		wantTraffic []servingv1.TrafficTarget
		wantCond    apis.Condition
		wantIngress bool // an Ingress was created: IngressReady waits for the gateway
		wantEvents  []string
	}{{
		name: "a split with tags",
		objs: []client.Object{
			route(
				servingv1.TrafficTarget{ConfigurationName: "hello", LatestRevision: ptr.To(true), Percent: ptr.To[int64](80), Tag: "latest"},
				servingv1.TrafficTarget{RevisionName: "hello-00001", Percent: ptr.To[int64](20), Tag: "old"},
			),
			readyConfiguration("hello", "hello-00002"), readyRevision("hello-00001"), readyRevision("hello-00002"),
		},
		wantURL: urlOf("hello.ns.example.com"),
		wantTraffic: []servingv1.TrafficTarget{
			{RevisionName: "hello-00002", LatestRevision: ptr.To(true), Percent: ptr.To[int64](80), Tag: "latest", URL: urlOf("latest-hello.ns.example.com")},
			{RevisionName: "hello-00001", LatestRevision: ptr.To(false), Percent: ptr.To[int64](20), Tag: "old", URL: urlOf("old-hello.ns.example.com")},
		},
		wantCond:    apis.Condition{Type: servingv1.RouteConditionAllTrafficAssigned, Status: corev1.ConditionTrue},
		wantIngress: true,
		wantEvents:  []string{`Normal Created Created Ingress "hello"`, "Normal TrafficAssigned Traffic now goes to hello-00002 80% (tag latest), hello-00001 20% (tag old)"},
	}, {
		name: "hosts from config-network's templates",
		objs: []client.Object{
			route(servingv1.TrafficTarget{RevisionName: "hello-00001", Percent: ptr.To[int64](100), Tag: "v1"}),
			readyRevision("hello-00001"),
		},
		network:     &config.Network{DomainTemplate: "{{.Name}}-{{.Namespace}}.{{.Domain}}", TagTemplate: "{{.Name}}-at-{{.Tag}}"},
		wantURL:     urlOf("hello-ns.example.com"),
		wantTraffic: []servingv1.TrafficTarget{{RevisionName: "hello-00001", LatestRevision: ptr.To(false), Percent: ptr.To[int64](100), Tag: "v1", URL: urlOf("hello-at-v1-ns.example.com")}},
		wantCond:    apis.Condition{Type: servingv1.RouteConditionAllTrafficAssigned, Status: corev1.ConditionTrue},
		wantIngress: true,
		wantEvents:  []string{`Normal Created Created Ingress "hello"`, "Normal TrafficAssigned Traffic now goes to hello-00001 100% (tag v1)"},
	}, {
		name:    "a missing target",
		objs:    []client.Object{route(servingv1.TrafficTarget{RevisionName: "gone", Percent: ptr.To[int64](100)})},
		wantURL: urlOf("hello.ns.example.com"),
		wantCond: apis.Condition{Type: servingv1.RouteConditionAllTrafficAssigned, Status: corev1.ConditionFalse,
			Reason: "RevisionMissing", Message: `Revision "gone" referenced in traffic not found.`},
		wantEvents: []string{`Warning RevisionMissing Revision "gone" referenced in traffic not found.`},
	}, {
		name:        "a target that cannot be read keeps the traffic and retries",
		objs:        []client.Object{assigned.DeepCopy(), readyRevision("hello-00001")},
		funcs:       failRevisionReads,
		wantErr:     errUnreadable,
		wantURL:     urlOf("hello.ns.example.com"),
		wantTraffic: assigned.Status.Traffic,
		wantCond:    apis.Condition{Type: servingv1.RouteConditionAllTrafficAssigned, Status: corev1.ConditionTrue},
		wantEvents:  []string{"Warning InternalError reading revision hello-00001: etcdserver: request timed out"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The reconciler sees the world through tt.funcs; the test reads it as it is.
			c := newClient().WithObjects(tt.objs...).Build()
			rec := reconcilertest.NewRecorder()
			cfg := config.NewConfig()
			if tt.network != nil {
				cfg.Network = tt.network
			}
			r := &Reconciler{Client: interceptor.NewClient(c, tt.funcs), Recorder: rec, Config: config.Static{Config: cfg}, Domain: "example.com"}
			_, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: "hello"}})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Reconcile() = %v, want %v", err, tt.wantErr)
			}
			got := &servingv1.Route{}
			if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "hello"}, got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantURL.String(), got.Status.URL.String()); diff != "" {
				t.Errorf("status.url (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantTraffic, got.Status.Traffic); diff != "" {
				t.Errorf("status.traffic (-want +got):\n%s", diff)
			}
			cond := got.Status.GetCondition(servingv1.RouteConditionAllTrafficAssigned)
			if diff := cmp.Diff(&tt.wantCond, cond, ignoreTimeAndSeverity); diff != "" {
				t.Errorf("AllTrafficAssigned (-want +got):\n%s", diff)
			}
			ingressReady := got.Status.GetCondition(servingv1.RouteConditionIngressReady)
			if !ingressReady.IsUnknown() || tt.wantIngress != (ingressReady.Reason == servingv1.ReasonIngressNotConfigured) {
				t.Errorf("IngressReady = %+v, want Unknown (IngressNotConfigured: %t)", ingressReady, tt.wantIngress)
			}
			ing := &netv1alpha1.Ingress{}
			if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "hello"}, ing); (err == nil) != tt.wantIngress {
				t.Errorf("Ingress exists = %v (%v), want %v", err == nil, err, tt.wantIngress)
			}
			if diff := cmp.Diff(tt.wantEvents, reconcilertest.Events(rec)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReconcileABadDomainTemplate(t *testing.T) {
	c := newClient().WithObjects(route(servingv1.TrafficTarget{RevisionName: "hello-00001", Percent: ptr.To[int64](100)})).Build()
	rec := reconcilertest.NewRecorder()
	cfg := config.NewConfig()
	cfg.Network = &config.Network{DomainTemplate: "{{.Name}}_{{.Namespace}}", TagTemplate: config.DefaultTagTemplate}
	r := &Reconciler{Client: c, Recorder: rec, Config: config.Static{Config: cfg}, Domain: "example.com"}
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: "hello"}}); err == nil {
		t.Fatal("Reconcile() = nil, want the error naming the host")
	}
	events := reconcilertest.Events(rec)
	if want := `Warning InternalError invalid domain name "hello_ns": `; len(events) != 1 || !strings.HasPrefix(events[0], want) {
		t.Errorf("events = %q, want one starting %q", events, want)
	}
}

func TestReconcileGone(t *testing.T) {
	c := newClient().Build()
	r := &Reconciler{Client: c, Recorder: reconcilertest.NewRecorder(), Domain: "example.com"}
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: "hello"}}); err != nil {
		t.Fatalf("Reconcile() of a deleted Route = %v, want nil", err)
	}
}

var ignoreTimeAndSeverity = cmp.FilterPath(func(p cmp.Path) bool {
	f := p.Last().String()
	return f == ".LastTransitionTime" || f == ".Severity"
}, cmp.Ignore())

// TestIngressReadinessBecomesIngressReady: the gateway marks the Ingress ready; the Route
// copies that into IngressReady and becomes Ready. A failed Ingress fails the Route.
func TestIngressReadinessBecomesIngressReady(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mark      func(*netv1alpha1.IngressStatus)
		wantReady corev1.ConditionStatus
	}{
		{"ready", func(s *netv1alpha1.IngressStatus) { s.MarkNetworkConfigured(); s.MarkLoadBalancerReady() }, corev1.ConditionTrue},
		{"not yet", func(s *netv1alpha1.IngressStatus) {}, corev1.ConditionUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := route(servingv1.TrafficTarget{RevisionName: "hello-00001", Percent: ptr.To[int64](100)})
			rt.UID = "route-uid"
			c := newClient().WithObjects(rt, readyRevision("hello-00001")).Build()
			r := &Reconciler{Client: c, Recorder: reconcilertest.NewRecorder(), Domain: "example.com"}
			req := ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: "hello"}}
			if _, err := r.Reconcile(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			// The gateway's part: mark the Ingress.
			ing := &netv1alpha1.Ingress{}
			if err := c.Get(context.Background(), req.NamespacedName, ing); err != nil {
				t.Fatal(err)
			}
			ing.Status.InitializeConditions()
			tc.mark(&ing.Status)
			ing.Status.ObservedGeneration = ing.Generation
			if err := c.Status().Update(context.Background(), ing); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Reconcile(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			got := &servingv1.Route{}
			if err := c.Get(context.Background(), req.NamespacedName, got); err != nil {
				t.Fatal(err)
			}
			if c := got.Status.GetCondition(servingv1.RouteConditionIngressReady); c.Status != tc.wantReady {
				t.Errorf("IngressReady = %+v, want %s", c, tc.wantReady)
			}
			if got.Status.IsReady() != (tc.wantReady == corev1.ConditionTrue) {
				t.Errorf("Route Ready = %v", got.Status.IsReady())
			}
		})
	}
}

// TestReconcileLabelsRevisions: the revisions the route sends traffic to (and the latest one
// its configuration created, about to take over) are active; one it stopped routing to goes to
// reserve unless another route still routes to it; others' revisions are left alone.
func TestReconcileLabelsRevisions(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	const earlier = "2026-11-27T08:00:00Z"
	// routedBy is a ready revision the routes named have marked routed.
	routedBy := func(name, routes string) *servingv1.Revision {
		rev := readyRevision(name)
		rev.Labels = map[string]string{servingv1.RoutingStateLabelKey: servingv1.RoutingStateActive}
		rev.Annotations = map[string]string{servingv1.RoutesAnnotationKey: routes, servingv1.RoutingStateModifiedAnnotationKey: earlier}
		return rev
	}
	cfg := readyConfiguration("hello", "hello-00002")
	cfg.Status.SetLatestCreatedRevisionName("hello-00003")
	objs := []client.Object{
		route(servingv1.TrafficTarget{ConfigurationName: "hello", LatestRevision: ptr.To(true), Percent: ptr.To[int64](100)}),
		cfg,
		routedBy("hello-00001", "hello"),        // the route's previous latest
		readyRevision("hello-00002"),            // its latest ready: takes the traffic now
		readyRevision("hello-00003"),            // its latest created: about to
		routedBy("pinned-00001", "hello,other"), // another route still routes to it
		routedBy("other-00001", "other"),        // not this route's business
	}
	c := newClient().WithObjects(objs...).Build()
	r := &Reconciler{Client: c, Recorder: reconcilertest.NewRecorder(), Domain: "example.com", Clock: clocktesting.NewFakePassiveClock(now)}
	req := ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: "hello"}}
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	type meta struct{ State, Routes, Modified string }
	want := map[string]meta{
		"hello-00001":  {"reserve", "", "2026-11-28T12:00:00Z"},
		"hello-00002":  {"active", "hello", "2026-11-28T12:00:00Z"},
		"hello-00003":  {"active", "hello", "2026-11-28T12:00:00Z"},
		"pinned-00001": {"active", "other", earlier},
		"other-00001":  {"active", "other", earlier},
	}
	routingMeta := func() (map[string]meta, map[string]string) {
		revs := &servingv1.RevisionList{}
		if err := c.List(context.Background(), revs); err != nil {
			t.Fatal(err)
		}
		got, versions := map[string]meta{}, map[string]string{}
		for _, rev := range revs.Items {
			got[rev.Name] = meta{rev.Labels[servingv1.RoutingStateLabelKey], rev.Annotations[servingv1.RoutesAnnotationKey], rev.Annotations[servingv1.RoutingStateModifiedAnnotationKey]}
			versions[rev.Name] = rev.ResourceVersion
		}
		return got, versions
	}
	got, versions := routingMeta()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("routing state, routes, modified (-want +got):\n%s", diff)
	}

	// Level-based: a second look changes nothing.
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if _, again := routingMeta(); !cmp.Equal(versions, again) {
		t.Errorf("a second reconcile wrote revisions: resourceVersions %v → %v", versions, again)
	}

	// The route goes: nothing routes to its revisions any more.
	if err := c.Delete(context.Background(), &servingv1.Route{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hello"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	want["hello-00002"] = meta{"reserve", "", "2026-11-28T12:00:00Z"}
	want["hello-00003"] = meta{"reserve", "", "2026-11-28T12:00:00Z"}
	if got, _ := routingMeta(); !cmp.Equal(want, got) {
		t.Errorf("after the route is deleted (-want +got):\n%s", cmp.Diff(want, got))
	}
}

// TestReconcileLabelsWhatItCanRead: a revision that cannot be labelled does not stop the
// others, and the failure is returned so the route is reconciled again.
func TestReconcileLabelsWhatItCanRead(t *testing.T) {
	rt := route(
		servingv1.TrafficTarget{RevisionName: "hello-00001", Percent: ptr.To[int64](50)},
		servingv1.TrafficTarget{RevisionName: "hello-00002", Percent: ptr.To[int64](50)},
	)
	c := newClient().WithObjects(rt, readyRevision("hello-00001"), readyRevision("hello-00002")).Build()
	failPatch := interceptor.Funcs{Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
		if obj.GetName() == "hello-00001" {
			return errUnreadable
		}
		return c.Patch(ctx, obj, patch, opts...)
	}}
	r := &Reconciler{Client: interceptor.NewClient(c, failPatch), Recorder: reconcilertest.NewRecorder(), Domain: "example.com"}
	_, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKeyFromObject(rt)})
	if !errors.Is(err, errUnreadable) {
		t.Errorf("Reconcile() = %v, want the failed patch", err)
	}
	rev := &servingv1.Revision{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "hello-00002"}, rev); err != nil {
		t.Fatal(err)
	}
	if got := rev.Labels[servingv1.RoutingStateLabelKey]; got != servingv1.RoutingStateActive {
		t.Errorf("hello-00002 routingState = %q, want active", got)
	}
	got := &servingv1.Route{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(rt), got); err != nil {
		t.Fatal(err)
	}
	if !got.Status.GetCondition(servingv1.RouteConditionAllTrafficAssigned).IsTrue() {
		t.Error("the route's status was not written along with the labelling failure")
	}
}

// newClient is a fake client with the indexes the reconciler's SetupWithManager registers
// that Reconcile itself lists by.
func newClient() *fake.ClientBuilder {
	return reconcilertest.NewClient().WithIndex(&servingv1.Revision{}, routesIndex, revisionRoutes)
}
