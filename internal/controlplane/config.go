package controlplane

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// Config says where the control plane keeps its data and where it listens.
type Config struct {
	// DataDir holds etcd's data, the PKI and the kubeconfigs.
	DataDir string
	// BindAddress is the IP the API server listens on.
	BindAddress string
	// HTTPSPort is the API server's port.
	HTTPSPort int
	// AdvertiseAddress is the IP the API server advertises to the cluster (the endpoint of the
	// "kubernetes" Service); empty picks the host's default interface.
	AdvertiseAddress string
	// EtcdClientPort and EtcdPeerPort are etcd's ports; etcd listens on loopback only.
	EtcdClientPort int
	EtcdPeerPort   int
	// ServiceCIDR is the range ClusterIPs are allocated from.
	ServiceCIDR string
	// WatchCache keeps the API server's watch cache, a decoded copy of every object and of its
	// recent versions (on in Kubernetes). Off (Gantry's default), every list and watch is served
	// from etcd, which runs in the same process: that saves the cache's copies (custom
	// resources as unstructured maps, the largest; about 45 % of the live heap with a thousand
	// Knative Services, and the versions a burst of writes leaves, which the cache keeps until
	// the next writes of the same kind). Watches then get their bookmarks from etcd's progress
	// notifications (bookmarks.go).
	WatchCache bool
	// WatchProgressInterval is how often etcd tells a watch without events the current
	// revision (a bookmark for the API server's clients); 0 means
	// DefaultWatchProgressInterval.
	WatchProgressInterval time.Duration
	// ClusterCIDR, when set, turns on the controller-manager's node IPAM: every Node gets a
	// spec.podCIDR of NodeCIDRMaskSize bits from it (as kube-controller-manager's
	// --allocate-node-cidrs --cluster-cidr --node-cidr-mask-size). Empty: off, each node's
	// range is given by hand.
	ClusterCIDR string
	// NodeCIDRMaskSize is the prefix length of a node's range in ClusterCIDR.
	NodeCIDRMaskSize int
	// ComponentLog is the file that receives the logs of etcd and the Kubernetes components
	// (rotated at 50 MB, three kept); empty means <data-dir>/logs/components.log, "-" stderr.
	ComponentLog string
	// Verbosity is the klog verbosity of the Kubernetes components.
	Verbosity int
	// ReadyTimeout bounds the wait for the API server's /readyz.
	ReadyTimeout time.Duration
	// ClusterInit starts an etcd that more servers can join (--cluster-init): it serves its
	// peers at the advertise address, and the controller-manager and the scheduler elect a
	// leader among the servers.
	ClusterInit bool
	// Join, when set, joins the cluster of another server (--server): the shared keys come
	// from it, and this server's etcd member is added to the cluster as a learner, then
	// promoted.
	Join JoinSource
}

// Defaults that work on a laptop.
const (
	DefaultDataDir        = "/var/lib/gantry"
	DefaultBindAddress    = "127.0.0.1"
	DefaultHTTPSPort      = 6443
	DefaultEtcdClientPort = 2379
	DefaultEtcdPeerPort   = 2380
	DefaultServiceCIDR    = "10.43.0.0/16"
	// DefaultNodeCIDRMaskSize is a /24 per node: 254 pods, as Kubernetes' default.
	DefaultNodeCIDRMaskSize = 24
	DefaultReadyTimeout     = 2 * time.Minute
	// DefaultWatchProgressInterval keeps a quiet watch's revision a minute old at most, well
	// inside the five minutes of history the API server leaves etcd at each compaction.
	DefaultWatchProgressInterval = time.Minute
)

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		DataDir:        DefaultDataDir,
		BindAddress:    DefaultBindAddress,
		HTTPSPort:      DefaultHTTPSPort,
		EtcdClientPort: DefaultEtcdClientPort,
		EtcdPeerPort:   DefaultEtcdPeerPort,
		ServiceCIDR:    DefaultServiceCIDR,
		ReadyTimeout:   DefaultReadyTimeout,

		NodeCIDRMaskSize: DefaultNodeCIDRMaskSize,
	}
}

// Validate checks every field and names the flag of the first one that is wrong.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir: must not be empty"))
	}
	if net.ParseIP(c.BindAddress) == nil {
		errs = append(errs, fmt.Errorf("--bind-address: %q is not an IP address", c.BindAddress))
	}
	if c.AdvertiseAddress != "" {
		ip := net.ParseIP(c.AdvertiseAddress)
		switch {
		case ip == nil:
			errs = append(errs, fmt.Errorf("--advertise-address: %q is not an IP address", c.AdvertiseAddress))
		case ip.IsLoopback() || ip.IsUnspecified():
			errs = append(errs, fmt.Errorf("--advertise-address: %s cannot be advertised to the cluster (loopback or unspecified)", ip))
		}
	}
	for _, p := range []struct {
		flag string
		port int
	}{{"--https-port", c.HTTPSPort}, {"--etcd-client-port", c.EtcdClientPort}, {"--etcd-peer-port", c.EtcdPeerPort}} {
		if p.port < 1 || p.port > 65535 {
			errs = append(errs, fmt.Errorf("%s: %d is not a port (1-65535)", p.flag, p.port))
		}
	}
	if c.EtcdClientPort == c.EtcdPeerPort {
		errs = append(errs, fmt.Errorf("--etcd-peer-port: %d is also the etcd client port", c.EtcdPeerPort))
	}
	if _, n, err := net.ParseCIDR(c.ServiceCIDR); err != nil {
		errs = append(errs, fmt.Errorf("--service-cidr: %q is not a CIDR", c.ServiceCIDR))
	} else if ones, bits := n.Mask.Size(); bits-ones > 20 {
		errs = append(errs, fmt.Errorf("--service-cidr: %s is too large (at most 2^20 addresses)", c.ServiceCIDR))
	}
	if err := checkClusterCIDR(c.ClusterCIDR, c.NodeCIDRMaskSize); err != nil {
		errs = append(errs, err)
	}
	if c.ClusterInit && c.Join != nil {
		errs = append(errs, errors.New("--cluster-init and --server: give one (--cluster-init starts a cluster, --server joins one)"))
	}
	if c.Verbosity < 0 {
		errs = append(errs, fmt.Errorf("--v: %d must not be negative", c.Verbosity))
	}
	return errors.Join(errs...)
}

// checkClusterCIDR checks the node IPAM's range and a node's prefix length in it.
func checkClusterCIDR(cidr string, mask int) error {
	if cidr == "" {
		return nil
	}
	ip, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return fmt.Errorf("--cluster-cidr: %q is not a CIDR", cidr)
	}
	if ip.To4() == nil {
		return fmt.Errorf("--cluster-cidr: %s: only IPv4 is supported", cidr)
	}
	if !ip.Equal(n.IP) {
		return fmt.Errorf("--cluster-cidr: %s has host bits set (the range is %s)", cidr, n)
	}
	ones, _ := n.Mask.Size()
	if mask <= ones || mask > 30 {
		return fmt.Errorf("--node-cidr-mask-size: %d must be longer than --cluster-cidr's /%d and at most 30", mask, ones)
	}
	// The range allocator's limit: at most 2^16 node ranges.
	if mask-ones > 16 {
		return fmt.Errorf("--node-cidr-mask-size: %d splits --cluster-cidr %s into more than 65536 node ranges", mask, cidr)
	}
	return nil
}

// listeners are the addresses the control plane binds, each with the flag that sets it.
func (c Config) listeners() []Listener {
	ls := []Listener{
		{"--https-port", net.JoinHostPort(c.BindAddress, fmt.Sprint(c.HTTPSPort))},
		{"--etcd-client-port", net.JoinHostPort("127.0.0.1", fmt.Sprint(c.EtcdClientPort))},
		{"--etcd-peer-port", net.JoinHostPort(c.etcdHost(), fmt.Sprint(c.EtcdPeerPort))},
	}
	if h := c.etcdHost(); h != "127.0.0.1" {
		ls = append(ls, Listener{"--etcd-client-port", net.JoinHostPort(h, fmt.Sprint(c.EtcdClientPort))})
	}
	return ls
}

// Listener is an address a server binds and the flag that sets it.
type Listener struct {
	Flag, Addr string
}

// CheckListeners fails with the flag and address of the first address that cannot be bound,
// before any component starts, so a port in use is reported once and clearly.
func CheckListeners(ls ...Listener) error {
	for _, l := range ls {
		ln, err := net.Listen("tcp", l.Addr)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("%s: address %s is already in use", l.Flag, l.Addr)
			}
			return fmt.Errorf("%s: cannot listen on %s: %w", l.Flag, l.Addr, err)
		}
		_ = ln.Close()
	}
	return nil
}
