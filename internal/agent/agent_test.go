package agent

import (
	"slices"
	"strings"
	"testing"
)

func TestValidateNamesEveryWrongFlag(t *testing.T) {
	good := Config{
		Server: "https://10.0.0.1:6443", Token: "K10" + strings.Repeat("a", 64) + "::abcdef.0123456789abcdef",
		NodeName: "worker-1", PodCIDR: DefaultPodCIDR, ServiceCIDR: DefaultServiceCIDR, KubeletPort: DefaultKubeletPort,
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("a good configuration: %v", err)
	}
	bad := Config{Token: "secret", NodeName: "Worker_1", PodCIDR: "10.0.0.0", ServiceCIDR: "x", Address: "host", KubeletPort: 0,
		RegistryAddr: "10.0.0.1:5000", RegistryNodePort: 70000}
	err := bad.Validate()
	if err == nil {
		t.Fatal("a bad configuration was accepted")
	}
	for _, flag := range []string{"--server", "--token", "--node-name", "--pod-cidr", "--service-cidr", "--address", "--kubelet-port", "--registry-addr", "--registry-node-port"} {
		if !strings.Contains(err.Error(), flag) {
			t.Errorf("the error does not name %s: %v", flag, err)
		}
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("the error repeats the token: %v", err)
	}
}

func TestRegistryEndpoints(t *testing.T) {
	got := RegistryEndpoints([]string{"10.0.0.1:6443", "10.0.0.2:6443", "10.0.0.1:7443", "[fd00::1]:6443", "bad"}, 6445)
	want := []string{"10.0.0.1:6445", "10.0.0.2:6445", "[fd00::1]:6445"}
	if !slices.Equal(got, want) {
		t.Errorf("RegistryEndpoints = %v, want %v (each server's host once, in order)", got, want)
	}
}
