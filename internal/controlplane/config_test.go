package controlplane

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/gantry-run/gantry/internal/controlplane/pki"
)

func TestDefaultConfigIsValid(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
}

func TestValidateNamesTheFlag(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"empty data dir", func(c *Config) { c.DataDir = "" }, "--data-dir: must not be empty"},
		{"bind address not an IP", func(c *Config) { c.BindAddress = "localhost" }, `--bind-address: "localhost" is not an IP address`},
		{"loopback advertise address", func(c *Config) { c.AdvertiseAddress = "127.0.0.1" }, "--advertise-address: 127.0.0.1 cannot be advertised"},
		{"port zero", func(c *Config) { c.HTTPSPort = 0 }, "--https-port: 0 is not a port"},
		{"port too high", func(c *Config) { c.EtcdClientPort = 70000 }, "--etcd-client-port: 70000 is not a port"},
		{"same etcd ports", func(c *Config) { c.EtcdPeerPort = c.EtcdClientPort }, "--etcd-peer-port: 2379 is also the etcd client port"},
		{"bad CIDR", func(c *Config) { c.ServiceCIDR = "10.0.0.0" }, `--service-cidr: "10.0.0.0" is not a CIDR`},
		{"huge CIDR", func(c *Config) { c.ServiceCIDR = "10.0.0.0/8" }, "--service-cidr: 10.0.0.0/8 is too large"},
		{"negative verbosity", func(c *Config) { c.Verbosity = -1 }, "--v: -1 must not be negative"},
		{"cluster CIDR not a CIDR", func(c *Config) { c.ClusterCIDR = "10.224.0.0" }, `--cluster-cidr: "10.224.0.0" is not a CIDR`},
		{"cluster CIDR with host bits", func(c *Config) { c.ClusterCIDR = "10.224.0.1/14" }, "--cluster-cidr: 10.224.0.1/14 has host bits set (the range is 10.224.0.0/14)"},
		{"IPv6 cluster CIDR", func(c *Config) { c.ClusterCIDR = "fd00:10::/56" }, "--cluster-cidr: fd00:10::/56: only IPv4"},
		{"node mask no longer than the cluster's", func(c *Config) { c.ClusterCIDR, c.NodeCIDRMaskSize = "10.224.0.0/24", 24 }, "--node-cidr-mask-size: 24 must be longer than --cluster-cidr's /24"},
		{"too many node ranges", func(c *Config) { c.ClusterCIDR, c.NodeCIDRMaskSize = "10.0.0.0/8", 28 }, "into more than 65536 node ranges"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestCheckListenersNamesTheFlagOfABusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = CheckListeners(Listener{"--https-port", ln.Addr().String()})
	want := "--https-port: address " + ln.Addr().String() + " is already in use"
	if err == nil || err.Error() != want {
		t.Fatalf("checkListeners = %v, want %q", err, want)
	}
}

func TestServingHostsCoverTheClusterNamesAndServiceIP(t *testing.T) {
	c := DefaultConfig()
	c.AdvertiseAddress = "192.0.2.7"
	hosts := strings.Join(servingHosts(c), " ")
	for _, want := range []string{"127.0.0.1", "localhost", "kubernetes.default.svc.cluster.local", "10.43.0.1", "192.0.2.7"} {
		if !strings.Contains(hosts, want) {
			t.Errorf("serving hosts %q lack %s", hosts, want)
		}
	}
}

func TestClientHostOfAWildcardIsLoopback(t *testing.T) {
	for bind, want := range map[string]string{"0.0.0.0": "127.0.0.1", "::": "127.0.0.1", "10.1.2.3": "10.1.2.3"} {
		if got := clientHost(bind); got != want {
			t.Errorf("clientHost(%q) = %q, want %q", bind, got, want)
		}
	}
}

// TestWatchCacheArg: the API server's watch cache is off unless Config.WatchCache (the
// server's --watch-cache) turns it on.
func TestWatchCacheArg(t *testing.T) {
	for _, on := range []bool{false, true} {
		cfg := DefaultConfig()
		cfg.WatchCache = on
		want := fmt.Sprintf("--watch-cache=%t", on)
		if args := apiServerArgs(cfg, pki.Bundle{Dir: cfg.DataDir}); !slices.Contains(args, want) {
			t.Errorf("WatchCache %t: the API server's args lack %s", on, want)
		}
	}
}

func TestControllerManagerArgsTurnOnNodeIPAMWithAClusterCIDR(t *testing.T) {
	off := strings.Join(controllerManagerArgs("k", pki.Bundle{}, DefaultConfig()), " ")
	if !strings.Contains(off, "-node-ipam-controller") || strings.Contains(off, "--allocate-node-cidrs") {
		t.Errorf("without a cluster CIDR node IPAM must be off: %s", off)
	}
	c := DefaultConfig()
	c.ClusterCIDR = "10.224.0.0/14"
	on := strings.Join(controllerManagerArgs("k", pki.Bundle{}, c), " ")
	for _, want := range []string{"--allocate-node-cidrs=true", "--cluster-cidr=10.224.0.0/14", "--node-cidr-mask-size=24"} {
		if !strings.Contains(on, want) {
			t.Errorf("with a cluster CIDR the flags lack %s: %s", want, on)
		}
	}
	if strings.Contains(on, "-node-ipam-controller") {
		t.Errorf("with a cluster CIDR node IPAM is still off: %s", on)
	}
}
