package agent

import (
	"strings"
	"testing"
)

func TestCheckPodCIDR(t *testing.T) {
	for _, tc := range []struct {
		name, assigned, want, cluster string
		err                           string
	}{
		{name: "the assigned range", assigned: "10.224.1.0/24", cluster: "10.224.0.0/14"},
		{name: "given by hand, the same", assigned: "10.224.1.0/24", want: "10.224.1.0/24", cluster: "10.224.0.0/14"},
		{name: "given by hand, another", assigned: "10.224.1.0/24", want: "10.224.2.0/24", cluster: "10.224.0.0/14",
			err: "--pod-cidr 10.224.2.0/24: the cluster's node IPAM gave this node 10.224.1.0/24; leave --pod-cidr out or give 10.224.1.0/24"},
		{name: "outside the cluster's range", assigned: "10.250.1.0/24", cluster: "10.224.0.0/14",
			err: "--cluster-cidr 10.224.0.0/14: the node's range 10.250.1.0/24 is not inside it"},
		{name: "larger than the cluster's range", assigned: "10.224.0.0/12", cluster: "10.224.0.0/14", err: "is not inside it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CheckPodCIDR(tc.assigned, tc.want, tc.cluster)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.assigned {
				t.Fatalf("CheckPodCIDR = %q, %v; want %q", got, err, tc.assigned)
			}
		})
	}
}

func TestValidateClusterCIDR(t *testing.T) {
	c := Config{
		Server: "https://10.0.0.1:6443", Token: "K10" + strings.Repeat("a", 64) + "::abcdef.0123456789abcdef",
		NodeName: "worker-1", ServiceCIDR: DefaultServiceCIDR, KubeletPort: DefaultKubeletPort,
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--pod-cidr: required without --cluster-cidr") {
		t.Errorf("neither --pod-cidr nor --cluster-cidr: %v", err)
	}
	c.ClusterCIDR = "10.224.0.1/14"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "--cluster-cidr") || !strings.Contains(err.Error(), "--address: required") {
		t.Errorf("a cluster CIDR with host bits and no --address: %v", err)
	}
	c.ClusterCIDR, c.Address = "10.224.0.0/14", "10.228.0.2"
	if err := c.Validate(); err != nil {
		t.Errorf("--cluster-cidr and --address, no --pod-cidr: %v", err)
	}
}
