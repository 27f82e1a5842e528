package integration

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/internal/gatewayservice"
	"github.com/gantry-run/gantry/internal/testenv"
)

// TestGatewayServicePublishers: two servers' publishers against the real API server keep
// kube-system/gantry-gateway's EndpointSlice to their live gateways: each adds its own, the
// one whose Lease expired (a server that died) is removed by the other, with its Lease, and
// one that stops withdraws its endpoint.
func TestGatewayServicePublishers(t *testing.T) {
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var clock time.Time
	now := func() time.Time { return clock }
	publisher := func(node, addr string) *gatewayservice.Publisher {
		p, err := gatewayservice.New(gatewayservice.Options{Client: env.Client, Node: node, Address: netip.MustParseAddr(addr), Port: 80, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b := publisher("itest-a", "10.238.1.1"), publisher("itest-b", "10.238.2.1")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Withdraw(ctx)
		_ = b.Withdraw(ctx)
		_ = env.Client.CoreV1().Services(gatewayservice.Namespace).Delete(ctx, gatewayservice.Name, metav1.DeleteOptions{})
		_ = env.Client.DiscoveryV1().EndpointSlices(gatewayservice.Namespace).Delete(ctx, gatewayservice.Name, metav1.DeleteOptions{})
	})
	endpoints := func() []string {
		t.Helper()
		es, err := env.Client.DiscoveryV1().EndpointSlices(gatewayservice.Namespace).Get(ctx, gatewayservice.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es.Endpoints {
			out = append(out, e.Addresses...)
		}
		return out
	}

	clock = time.Now()
	for _, p := range []*gatewayservice.Publisher{a, b} {
		if err := p.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Sync(ctx); err != nil { // a writes again, now seeing b
		t.Fatal(err)
	}
	if got := endpoints(); !slices.Equal(got, []string{"10.238.1.1", "10.238.2.1"}) {
		t.Errorf("both live: %v", got)
	}
	svc, err := env.Client.CoreV1().Services(gatewayservice.Namespace).Get(ctx, gatewayservice.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.Type != corev1.ServiceTypeClusterIP || svc.Spec.ClusterIP == "" || svc.Spec.Selector != nil {
		t.Errorf("the Service: %+v", svc.Spec)
	}

	// b dies: only a renews, past b's Lease.
	clock = clock.Add(gatewayservice.LeaseDuration + time.Second)
	if err := a.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := endpoints(); !slices.Equal(got, []string{"10.238.1.1"}) {
		t.Errorf("after b's Lease expired: %v", got)
	}
	if _, err := env.Client.CoordinationV1().Leases(gatewayservice.Namespace).Get(ctx, gatewayservice.LeaseName("itest-b"), metav1.GetOptions{}); err == nil {
		t.Error("b's expired Lease is still there")
	}

	// a stops.
	if err := a.Withdraw(ctx); err != nil {
		t.Fatal(err)
	}
	if got := endpoints(); len(got) != 0 {
		t.Errorf("after a withdrew: %v", got)
	}
}
