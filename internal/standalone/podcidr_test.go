package standalone

import (
	"strings"
	"testing"
)

func TestFirstNodeCIDR(t *testing.T) {
	for cluster, want := range map[string]string{"10.224.0.0/14": "10.224.0.0/24", "10.42.0.0/16": "10.42.0.0/24"} {
		if got, err := FirstNodeCIDR(cluster, 24); err != nil || got != want {
			t.Errorf("FirstNodeCIDR(%s, 24) = %q, %v; want %s", cluster, got, err, want)
		}
	}
}

func TestPodCIDRMustLieInTheClusterCIDR(t *testing.T) {
	c := DefaultConfig()
	c.ControlPlane.ClusterCIDR = "10.224.0.0/14"
	c.PodCIDR = "10.246.0.0/16"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--pod-cidr 10.246.0.0/16: not inside --cluster-cidr 10.224.0.0/14") {
		t.Errorf("a pod range outside the cluster's: %v", err)
	}
	c.PodCIDR = "10.224.3.0/24"
	if err := c.Validate(); err != nil {
		t.Errorf("a pod range inside the cluster's: %v", err)
	}
}
