package gatewayservice

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
)

func lease(node, addr string, renewed time.Time) coordinationv1.Lease {
	return coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: LeaseName(node), Annotations: map[string]string{AddressAnnotation: addr}},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To(node),
			LeaseDurationSeconds: ptr.To(int32(30)),
			RenewTime:            ptr.To(metav1.NewMicroTime(renewed)),
		},
	}
}

func TestLiveEndpoints(t *testing.T) {
	now := time.Date(2026, 11, 29, 1, 0, 0, 0, time.UTC)
	deleting := lease("d", "10.224.3.1", now)
	deleting.DeletionTimestamp = ptr.To(metav1.NewTime(now))
	noRenew := lease("n", "10.224.4.1", now)
	noRenew.Spec.RenewTime = nil
	got := LiveEndpoints([]coordinationv1.Lease{
		lease("c", "10.224.2.1", now.Add(-5*time.Second)),
		lease("a", "10.224.0.1", now.Add(-29*time.Second)),
		lease("old", "10.224.1.1", now.Add(-30*time.Second)), // expired at now
		lease("bad", "not-an-ip", now),
		deleting, noRenew,
		// Two Leases name one address: the newer holder wins.
		lease("b-old", "10.224.5.1", now.Add(-20*time.Second)),
		lease("b-new", "10.224.5.1", now.Add(-time.Second)),
	}, now)
	want := []Endpoint{
		{Node: "a", Address: netip.MustParseAddr("10.224.0.1")},
		{Node: "c", Address: netip.MustParseAddr("10.224.2.1")},
		{Node: "b-new", Address: netip.MustParseAddr("10.224.5.1")},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestEndpointSlice(t *testing.T) {
	eps := []Endpoint{{Node: "a", Address: netip.MustParseAddr("10.224.0.1")}, {Node: "b", Address: netip.MustParseAddr("10.224.1.1")}}
	es := MakeEndpointSlice(eps, 80)
	for k, v := range es.Labels {
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			t.Errorf("label %s: %v", k, errs)
		}
	}
	if es.Labels["kubernetes.io/service-name"] != Name || es.Labels["endpointslice.kubernetes.io/managed-by"] != ManagedBy {
		t.Errorf("labels %v", es.Labels)
	}
	if len(es.Endpoints) != 2 || es.Endpoints[1].Addresses[0] != "10.224.1.1" || !*es.Endpoints[1].Conditions.Ready || *es.Endpoints[1].NodeName != "b" {
		t.Errorf("endpoints %+v", es.Endpoints)
	}
	if !sameEndpoints(es, MakeEndpointSlice(eps, 80)) {
		t.Error("a slice differs from itself")
	}
	if sameEndpoints(es, MakeEndpointSlice(eps[:1], 80)) || sameEndpoints(es, MakeEndpointSlice(eps, 81)) {
		t.Error("slices with other endpoints or ports are the same")
	}
	if empty := MakeEndpointSlice(nil, 80); empty.Endpoints == nil || len(empty.Endpoints) != 0 {
		t.Errorf("no endpoints: %+v, want an empty list", empty.Endpoints)
	}
	svc := MakeService(80)
	if svc.Spec.Selector != nil || svc.Spec.Ports[0].Port != 80 || svc.Spec.Ports[0].TargetPort.IntVal != 80 {
		t.Errorf("service %+v", svc.Spec)
	}
	if _, err := New(Options{Node: "a", Address: netip.MustParseAddr("10.224.0.1"), Port: 80}); err == nil {
		t.Error("New without a client is accepted")
	}
}
