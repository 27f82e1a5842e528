package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gantry-run/gantry/internal/controlplane/datadir"
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
		{"cluster-init and server", func(c *Config) { c.ClusterInit, c.Join = true, noJoin{} }, "--cluster-init and --server: give one"},
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

// noJoin is a JoinSource that is never asked.
type noJoin struct{}

func (noJoin) Fetch(context.Context) (Bootstrap, error) { return Bootstrap{}, errors.New("not asked") }

// TestEtcdAddresses: etcd stays on loopback unless the server is one of a cluster with an
// advertise address; then its peers and the other servers reach it there, and its certificate
// covers it.
func TestEtcdAddresses(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		clusterInit, joining bool
		advertise            string
		wantHost             string
	}{
		{"single server", false, false, "10.0.0.1", "127.0.0.1"},
		{"cluster-init on loopback", true, false, "", "127.0.0.1"},
		{"cluster-init", true, false, "10.0.0.1", "10.0.0.1"},
		{"joining", false, true, "10.0.0.2", "10.0.0.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.ClusterInit, c.AdvertiseAddress = tc.clusterInit, tc.advertise
			if tc.joining {
				c.Join = noJoin{}
			}
			if got := c.etcdHost(); got != tc.wantHost {
				t.Errorf("etcdHost() = %s, want %s", got, tc.wantHost)
			}
			hosts := c.etcdHosts()
			if !slices.Contains(hosts, "127.0.0.1") || !slices.Contains(hosts, tc.wantHost) {
				t.Errorf("etcdHosts() = %v, want loopback and %s", hosts, tc.wantHost)
			}
			peers := 0
			for _, l := range c.listeners() {
				if l.Flag == "--etcd-peer-port" {
					peers++
					if host, _, _ := net.SplitHostPort(l.Addr); host != tc.wantHost {
						t.Errorf("the peer port is checked on %s, want %s", l.Addr, tc.wantHost)
					}
				}
			}
			if peers != 1 {
				t.Errorf("%d peer listeners, want 1", peers)
			}
		})
	}
}

func TestSharedFilesAreThePKIsKeys(t *testing.T) {
	want := []string{"ca.crt", "ca.key", "etcd/ca.crt", "etcd/ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "service-account.key"}
	if got := SharedFiles(); !slices.Equal(got, want) {
		t.Errorf("SharedFiles() = %v, want %v", got, want)
	}
}

// TestMemberOfADataDir: the etcd member a data dir starts as, before any etcd call.
func TestMemberOfADataDir(t *testing.T) {
	for _, tc := range []struct {
		name             string
		member, nameFile bool
		joining          bool
		want             etcdMember
		wantErr          string
	}{
		{name: "first start", want: etcdMember{name: EtcdMemberName, state: "new"}},
		{name: "single server restart", member: true, want: etcdMember{name: EtcdMemberName, state: "new"}},
		{name: "joined server restart", member: true, nameFile: true, want: etcdMember{name: "gantry-0a1b2c3d", state: "existing"}},
		{name: "joined server restart with --server", member: true, nameFile: true, joining: true, want: etcdMember{name: "gantry-0a1b2c3d", state: "existing"}},
		{name: "unfinished join without --server", nameFile: true, wantErr: "its join of a cluster did not finish"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			etcd := etcdDataDir(dir)
			if err := os.MkdirAll(etcd, 0o700); err != nil {
				t.Fatal(err)
			}
			if tc.member {
				if err := os.Mkdir(filepath.Join(etcd, "member"), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			if tc.nameFile {
				if err := os.WriteFile(filepath.Join(etcd, memberNameFile), []byte("gantry-0a1b2c3d\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg := DefaultConfig()
			cfg.DataDir = dir
			if tc.joining {
				cfg.Join = noJoin{}
			}
			cp := &ControlPlane{cfg: cfg, dir: &datadir.Dir{Path: dir}}
			got, err := cp.member(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("member() = %v, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got.name != tc.want.name || got.state != tc.want.state {
				t.Errorf("member() = %+v, %v; want %s, %s", got, err, tc.want.name, tc.want.state)
			}
		})
	}
}
