package agent

import (
	"slices"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
)

func TestAPIServersFromTheSlice(t *testing.T) {
	name, other := "https", "metrics"
	port, otherPort := int32(6443), int32(9095)
	no := false
	slice := &discoveryv1.EndpointSlice{
		Ports: []discoveryv1.EndpointPort{{Name: &other, Port: &otherPort}, {Name: &name, Port: &port}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.0.0.1"}},
			{Addresses: []string{"10.0.0.2"}, Conditions: discoveryv1.EndpointConditions{Ready: &no}},
			{Addresses: []string{"fd00::3", "not-an-ip"}},
		},
	}
	if got, want := apiServers(slice), []string{"10.0.0.1:6443", "[fd00::3]:6443"}; !slices.Equal(got, want) {
		t.Errorf("apiServers = %v, want %v", got, want)
	}
	// No port named https: the first port.
	slice.Ports = slice.Ports[:1]
	if got := apiServers(slice); len(got) != 2 || got[0] != "10.0.0.1:9095" {
		t.Errorf("apiServers without an https port = %v", got)
	}
	slice.Ports = nil
	if got := apiServers(slice); got != nil {
		t.Errorf("apiServers without a port = %v, want none", got)
	}
}
