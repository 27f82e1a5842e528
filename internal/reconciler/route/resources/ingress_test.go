package resources

import (
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/pkg/apis/config"
	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

func TestMakeIngress(t *testing.T) {
	hosts := Hosts{Network: config.NewNetwork(), Domain: "localhost"}
	traffic := []servingv1.TrafficTarget{
		{RevisionName: "web-2", Percent: ptr.To[int64](60), Tag: "new"},
		{RevisionName: "web-1", Percent: ptr.To[int64](40)},
		{RevisionName: "web-1", Percent: ptr.To[int64](0), Tag: "old"},
	}
	route := &servingv1.Route{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "u"}}
	ing, err := MakeIngress(route, traffic, hosts, true)
	if err != nil {
		t.Fatal(err)
	}
	type rule struct {
		hosts  []string
		vis    netv1alpha1.IngressVisibility
		splits []string // revision:percent of the last path
		header bool     // a tag-header path comes first
	}
	var got []rule
	for _, r := range ing.Spec.Rules {
		last := r.HTTP.Paths[len(r.HTTP.Paths)-1]
		var s []string
		for _, sp := range last.Splits {
			s = append(s, sp.ServiceName+":"+itoa(sp.Percent))
		}
		got = append(got, rule{hosts: r.Hosts, vis: r.Visibility, splits: s, header: len(r.HTTP.Paths) > 1})
	}
	cluster := func(n string) []string { return []string{n + ".ns.svc.cluster.local", n + ".ns.svc", n + ".ns"} }
	want := []rule{
		{hosts: []string{"web.ns.localhost"}, vis: netv1alpha1.IngressVisibilityExternalIP, splits: []string{"web-1:40", "web-2:60"}, header: true},
		{hosts: cluster("web"), vis: netv1alpha1.IngressVisibilityClusterLocal, splits: []string{"web-1:40", "web-2:60"}, header: true},
		{hosts: []string{"new-web.ns.localhost"}, vis: netv1alpha1.IngressVisibilityExternalIP, splits: []string{"web-2:100"}},
		{hosts: cluster("new-web"), vis: netv1alpha1.IngressVisibilityClusterLocal, splits: []string{"web-2:100"}},
		{hosts: []string{"old-web.ns.localhost"}, vis: netv1alpha1.IngressVisibilityExternalIP, splits: []string{"web-1:100"}},
		{hosts: cluster("old-web"), vis: netv1alpha1.IngressVisibilityClusterLocal, splits: []string{"web-1:100"}},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(rule{})); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	if h := ing.Spec.Rules[0].HTTP.Paths[0].Headers[TagHeader].Exact; h != "new" {
		t.Errorf("first tag-header path matches %q, want new", h)
	}

	// A cluster-local Route has no external host.
	route.Labels = map[string]string{servingv1.VisibilityLabelKey: servingv1.VisibilityClusterLocal}
	ing, err = MakeIngress(route, traffic[:1], hosts, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ing.Spec.Rules {
		if r.Visibility != netv1alpha1.IngressVisibilityClusterLocal {
			t.Errorf("cluster-local route has a %s rule for %v", r.Visibility, r.Hosts)
		}
		if len(r.HTTP.Paths) != 1 {
			t.Errorf("tag-header paths without the feature: %d paths", len(r.HTTP.Paths))
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
