package apiservers

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
)

func TestFromSlice(t *testing.T) {
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
	if got, want := FromSlice(slice), []string{"10.0.0.1:6443", "[fd00::3]:6443"}; !slices.Equal(got, want) {
		t.Errorf("apiServers = %v, want %v", got, want)
	}
	// No port named https: the first port.
	slice.Ports = slice.Ports[:1]
	if got := FromSlice(slice); len(got) != 2 || got[0] != "10.0.0.1:9095" {
		t.Errorf("apiServers without an https port = %v", got)
	}
	slice.Ports = nil
	if got := FromSlice(slice); got != nil {
		t.Errorf("apiServers without a port = %v, want none", got)
	}
}

func TestFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	if got, err := ReadFile(path); err != nil || got != nil {
		t.Fatalf("ReadFile of a missing file = %v, %v; want nothing", got, err)
	}
	want := []string{"10.0.0.1:6443", "[fd00::3]:6443"}
	if err := WriteFile(path, want); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("not an address\n\n")
	_ = f.Close()
	if got, err := ReadFile(path); err != nil || !slices.Equal(got, want) {
		t.Errorf("ReadFile = %v, %v; want %v", got, err, want)
	}
}
