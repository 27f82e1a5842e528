package gateway

import (
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
)

func split(rev string, pct int) netv1alpha1.IngressBackendSplit {
	return netv1alpha1.IngressBackendSplit{IngressBackend: netv1alpha1.IngressBackend{ServiceNamespace: "ns", ServiceName: rev}, Percent: pct}
}

func ingress(name string, created time.Time, rules ...netv1alpha1.IngressRule) netv1alpha1.Ingress {
	return netv1alpha1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", CreationTimestamp: metav1.NewTime(created)},
		Spec:       netv1alpha1.IngressSpec{Rules: rules},
	}
}

func httpRule(vis netv1alpha1.IngressVisibility, hosts []string, paths ...netv1alpha1.HTTPIngressPath) netv1alpha1.IngressRule {
	return netv1alpha1.IngressRule{Hosts: hosts, Visibility: vis, HTTP: &netv1alpha1.HTTPIngressRuleValue{Paths: paths}}
}

func TestTableRoutesByHostVisibilitySplitAndTagHeader(t *testing.T) {
	now := time.Now()
	tbl := buildTable([]netv1alpha1.Ingress{
		ingress("hello", now,
			httpRule(netv1alpha1.IngressVisibilityExternalIP, []string{"hello.ns.localhost"},
				netv1alpha1.HTTPIngressPath{Headers: map[string]netv1alpha1.HeaderMatch{"Knative-Serving-Tag": {Exact: "old"}}, Splits: []netv1alpha1.IngressBackendSplit{split("hello-1", 100)}},
				netv1alpha1.HTTPIngressPath{Splits: []netv1alpha1.IngressBackendSplit{split("hello-1", 30), split("hello-2", 70)}}),
			httpRule(netv1alpha1.IngressVisibilityClusterLocal, []string{"hello.ns.svc.cluster.local"},
				netv1alpha1.HTTPIngressPath{Splits: []netv1alpha1.IngressBackendSplit{split("hello-2", 100)}})),
		// A younger Ingress does not take a host already served.
		ingress("thief", now.Add(time.Minute),
			httpRule(netv1alpha1.IngressVisibilityExternalIP, []string{"hello.ns.localhost"},
				netv1alpha1.HTTPIngressPath{Splits: []netv1alpha1.IngressBackendSplit{split("thief-1", 100)}})),
	})

	r := tbl.lookup("HELLO.ns.localhost", false)
	if r == nil {
		t.Fatal("external host not found")
	}
	for roll, want := range map[int]string{0: "hello-1", 29: "hello-1", 30: "hello-2", 99: "hello-2"} {
		if _, s := r.choose(http.Header{}, roll); s.ServiceName != want {
			t.Errorf("roll %d → %s, want %s", roll, s.ServiceName, want)
		}
	}
	h := http.Header{}
	h.Set("Knative-Serving-Tag", "old")
	if _, s := r.choose(h, 99); s.ServiceName != "hello-1" {
		t.Errorf("tag header → %s, want hello-1", s.ServiceName)
	}
	if tbl.lookup("hello.ns.svc.cluster.local", false) != nil {
		t.Error("a cluster-local host answered from outside")
	}
	if r := tbl.lookup("hello.ns.svc.cluster.local", true); r == nil {
		t.Error("a cluster-local host did not answer a pod")
	}
	if tbl.lookup("nope.ns.localhost", true) != nil {
		t.Error("unknown host found")
	}
}
