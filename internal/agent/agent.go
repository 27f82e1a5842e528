// Package agent is `gantry agent`: a machine that joins a Gantry cluster as a node and runs
// its pods in runc sandboxes, with nothing of the control plane. It joins with the server's
// token (internal/join: the CA the token pins, a node certificate asked with the token, the
// kubelet API's serving certificate asked as the node), then runs the pods' network and the
// node agent, as gantry server runs its own node.
package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/gantry-run/gantry/internal/apiservers"
	"github.com/gantry-run/gantry/internal/controlplane/datadir"
	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/join"
	"github.com/gantry-run/gantry/internal/kubeproxy"
	"github.com/gantry-run/gantry/internal/lifecycle"
	"github.com/gantry-run/gantry/internal/loadbalancer"
	"github.com/gantry-run/gantry/internal/node"
	"github.com/gantry-run/gantry/internal/overlay"
	"github.com/gantry-run/gantry/internal/podnet"
	"github.com/gantry-run/gantry/internal/qpbin"
	"github.com/gantry-run/gantry/internal/sandbox"
)

// Defaults of an agent: apart from gantry server's, so both run on one machine.
const (
	DefaultDataDir     = "/var/lib/gantry-agent"
	DefaultBridge      = "gantry-agent0"
	DefaultPodCIDR     = "10.42.0.0/16"
	DefaultKubeletPort = 10251
	DefaultServiceCIDR = "10.96.0.0/12"
)

// Config is an agent's configuration; the flags of gantry agent.
type Config struct {
	// Server is the API server's URL, or the URLs of the servers of a cluster, comma-separated:
	// the agent then reaches them through a load balancer of its own that fails over between
	// them (internal/loadbalancer). Token is the join token.
	Server string
	Token  string
	// NodeName is the node's name (default: the host name).
	NodeName string
	DataDir  string
	// Bridge and PodCIDR are the pods' network on this machine: a range of its own.
	Bridge, PodCIDR string
	// ServiceCIDR is the cluster's Service range (gantry server's --service-cidr).
	ServiceCIDR string
	// ClusterCIDR is the range of every node's pods (gantry server's --cluster-cidr): when
	// set, the node's own range is its Node's spec.podCIDR (the server's node IPAM gives it;
	// PodCIDR, if given, must be that one) and the overlay joins it to the other nodes'.
	ClusterCIDR string
	// KubeProxy runs kube-proxy for the node, with ClusterCIDR only (the server then lets
	// nodes read Services and EndpointSlices): "auto" unless another kube-proxy owns this
	// network namespace's rules, "on" (refuse to start otherwise), "off".
	KubeProxy string
	// VXLANVNI and VXLANPort are the overlay's (every node's the same; default
	// overlay.DefaultVNI and overlay.DefaultPort).
	VXLANVNI, VXLANPort int
	// Address is the node's InternalIP, where the API server reaches its kubelet API
	// (default: the host's default interface).
	Address     string
	KubeletPort int
	// APIServerPort is the port pods reach the API server on (the server's --https-port).
	APIServerPort int
	// RegistryAddr is the servers' embedded registry as pods' images name it (the server's
	// --registry-addr, on its loopback); RegistryNodePort the port where the servers let
	// nodes read it (the server's --registry-node-port). The node pulls those images from
	// the servers, trying each, then RegistryAddr on this machine ("" is
	// image.DefaultRegistryAddr). RegistryNodePort 0 pulls them from RegistryAddr on this
	// machine only.
	RegistryAddr     string
	RegistryNodePort int
	Logger           *slog.Logger
}

// Validate checks the configuration and names the flag of each wrong field.
func (c Config) Validate() error {
	var errs []error
	if c.Server == "" {
		errs = append(errs, errors.New("--server: required (https://HOST:6443, printed by gantry server)"))
	}
	for _, s := range c.servers() {
		if u, err := url.Parse(s); err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("--server: %q is not an https:// URL of a server", s))
		}
	}
	if _, err := join.ParseToken(c.Token); err != nil {
		errs = append(errs, fmt.Errorf("--token: %w", err))
	}
	if msgs := validation.IsDNS1123Subdomain(c.NodeName); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("--node-name %q: %v", c.NodeName, msgs))
	}
	switch {
	case c.PodCIDR == "" && c.ClusterCIDR == "":
		errs = append(errs, errors.New("--pod-cidr: required without --cluster-cidr (a range of this node's own)"))
	case c.PodCIDR != "":
		if _, _, err := net.ParseCIDR(c.PodCIDR); err != nil {
			errs = append(errs, fmt.Errorf("--pod-cidr: %q is not a CIDR", c.PodCIDR))
		}
	}
	if c.ClusterCIDR != "" {
		if ip, n, err := net.ParseCIDR(c.ClusterCIDR); err != nil || ip.To4() == nil || !ip.Equal(n.IP) {
			errs = append(errs, fmt.Errorf("--cluster-cidr: %q is not an IPv4 network address with a prefix (the server's --cluster-cidr)", c.ClusterCIDR))
		}
		if c.Address == "" {
			errs = append(errs, errors.New("--address: required with --cluster-cidr (the overlay sends to other nodes from it)"))
		}
	}
	if _, _, err := net.ParseCIDR(c.ServiceCIDR); err != nil {
		errs = append(errs, fmt.Errorf("--service-cidr: %q is not a CIDR", c.ServiceCIDR))
	}
	if c.Address != "" && net.ParseIP(c.Address) == nil {
		errs = append(errs, fmt.Errorf("--address: %q is not an IP address", c.Address))
	}
	switch c.KubeProxy {
	case "", "auto", "off":
	case "on":
		if c.ClusterCIDR == "" {
			errs = append(errs, errors.New("--kube-proxy=on: needs --cluster-cidr (with it the server lets nodes read Services and EndpointSlices)"))
		}
	default:
		errs = append(errs, fmt.Errorf("--kube-proxy: %q is not auto, on or off", c.KubeProxy))
	}
	if c.KubeletPort < 1 || c.KubeletPort > 65535 {
		errs = append(errs, fmt.Errorf("--kubelet-port: %d is not a port", c.KubeletPort))
	}
	if err := image.CheckLoopback(cmp.Or(c.RegistryAddr, image.DefaultRegistryAddr)); err != nil {
		errs = append(errs, fmt.Errorf("--registry-addr: the server's --registry-addr, %w", err))
	}
	if c.RegistryNodePort < 0 || c.RegistryNodePort > 65535 {
		errs = append(errs, fmt.Errorf("--registry-node-port: %d is not a port (1-65535, or 0 for none)", c.RegistryNodePort))
	}
	return errors.Join(errs...)
}

// servers are the URLs of --server.
func (c Config) servers() []string {
	var out []string
	for _, s := range strings.Split(c.Server, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Agent is a joined node and its parts.
type Agent struct {
	group *lifecycle.Group
	dir   *datadir.Dir
	Node  *node.Node
	// lb fails over between the servers of a cluster: those of --server, then those the
	// cluster lists; stopLB ends it and waits.
	lb     *loadbalancer.LoadBalancer
	stopLB func()
}

// Start joins the cluster and starts the node; it returns once the node serves.
func Start(ctx context.Context, cfg Config, address net.IP) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tok, _ := join.ParseToken(cfg.Token)
	// The data dir is locked while the agent runs (gantry cleanup reads it as a server's).
	dir, err := datadir.Open(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	started := false
	defer func() {
		if !started {
			dir.Close()
		}
	}()
	if err := sandbox.MakeSearchable(cfg.DataDir); err != nil {
		return nil, err
	}
	if err := sandbox.CheckSearchable(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	a := &Agent{group: lifecycle.NewGroup(cfg.Logger), dir: dir, stopLB: func() {}}
	// Every client of the agent (the join, the node) goes through the load balancer, even
	// with one --server: it learns the cluster's other servers once joined.
	if a.lb, err = loadbalancer.New(cfg.servers(), cfg.Logger); err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	lbCtx, cancel := context.WithCancel(context.Background())
	lbDone := make(chan struct{})
	go func() {
		defer close(lbDone)
		if err := a.lb.Start(lbCtx); err != nil {
			cfg.Logger.Error("api load balancer stopped", "err", err)
		}
	}()
	a.stopLB = func() { cancel(); <-lbDone }
	defer func() {
		if !started {
			a.stopLB()
		}
	}()
	server := a.lb.URL()
	// The servers it learned before a restart, should those of --server be down now.
	learned := dir.Join(apiservers.FileName)
	if known, err := apiservers.ReadFile(learned); err == nil && len(known) > 0 {
		a.lb.SetLearned(known)
	}
	if err := a.lb.Check(ctx); err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	creds, err := join.Join(ctx, join.NodeOptions{
		Server: server, Token: tok, NodeName: cfg.NodeName,
		Dir:       dir.Join("credentials"),
		Addresses: []net.IP{address},
		Hosts:     []string{cfg.NodeName},
	})
	if err != nil {
		return nil, fmt.Errorf("joining %s: %w", cfg.Server, err)
	}
	restConfig, err := creds.RESTConfig()
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}

	a.group.Add("api servers", &serverLearner{client: client, lb: a.lb, file: learned, log: cfg.Logger.With("component", "agent")})

	info := node.MachineInfo(cfg.NodeName, address, cfg.KubeletPort, cfg.DataDir)
	if cfg.ClusterCIDR != "" {
		// The node's range comes from its Node, which node IPAM fills once the Node exists.
		podCIDR, err := AssignedPodCIDR(ctx, client, info, cfg.PodCIDR, cfg.ClusterCIDR)
		if err != nil {
			return nil, err
		}
		cfg.PodCIDR = podCIDR
		cfg.Logger.Info("pod range from node IPAM", "component", "agent", "node", cfg.NodeName, "pod_cidr", podCIDR)
		ov, err := overlay.New(overlay.Options{
			NodeName: cfg.NodeName, ClusterCIDR: cfg.ClusterCIDR, PublicIP: address,
			VNI: cfg.VXLANVNI, Port: cfg.VXLANPort, RESTConfig: restConfig,
			StateDir: dir.Join(datadir.OverlayDir), Logger: cfg.Logger,
		})
		if err != nil {
			return nil, err
		}
		a.group.Add("overlay", ov)
	}
	policy := podnet.Policy{
		Bridge: cfg.Bridge, PodCIDR: cfg.PodCIDR, ServiceCIDR: cfg.ServiceCIDR, APIServerPort: cfg.APIServerPort,
		ClusterCIDR: cfg.ClusterCIDR,
	}
	if cfg.ClusterCIDR != "" {
		// The node's cluster DNS, on the pods' gateway address.
		policy.GatewayPorts = []podnet.Port{{Proto: "udp", Port: 53}, {Proto: "tcp", Port: 53}}
	}
	network, err := podnet.New(podnet.Options{Policy: policy, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("--pod-cidr, --bridge, --service-cidr, --cluster-cidr: %w", err)
	}
	a.group.Add("pod network", network)
	var dnsIP net.IP
	if cfg.ClusterCIDR != "" {
		dnsIP = network.Gateway()
		a.group.Add("cluster DNS", newClusterDNS(restConfig, dnsIP, cfg.Logger))
	}
	sandboxes, err := sandbox.NewManager(ctx, sandbox.Options{Root: dir.Join(datadir.SandboxesDir), PodCIDR: cfg.PodCIDR, Bridge: cfg.Bridge,
		NoMasquerade: true, Logger: cfg.Logger.With("component", "sandbox")})
	if err != nil {
		return nil, err
	}
	storeOpts := image.StoreOptions{Logger: cfg.Logger}
	if cfg.RegistryNodePort != 0 {
		cfg.RegistryAddr = cmp.Or(cfg.RegistryAddr, image.DefaultRegistryAddr)
		if storeOpts.Transport, err = registryMirror(cfg, creds, a.lb); err != nil {
			return nil, err
		}
		cfg.Logger.Info("pulling the server registry's images from the servers", "component", "agent",
			"registry", cfg.RegistryAddr, "servers", strings.Join(RegistryEndpoints(a.lb.Servers(), cfg.RegistryNodePort), ","))
	}
	images, err := image.NewStore(dir.Join(datadir.ImagesDir), storeOpts)
	if err != nil {
		return nil, err
	}
	queueProxy, err := qpbin.Binary(dir.Join(datadir.BinDir))
	if err != nil {
		return nil, err
	}
	a.Node, err = node.New(node.Options{
		Info:             info,
		Client:           client,
		Sandboxes:        sandboxes,
		Images:           images,
		StateDir:         dir.Join(datadir.NodeDir),
		QueueProxyBinary: queueProxy,
		KubeletCertFile:  creds.ServingCert,
		KubeletKeyFile:   creds.ServingKey,
		ClientCAFile:     creds.CAFile,
		ClusterDNS:       dnsIP,
		Logger:           cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	a.group.Add("node", a.Node)
	// kube-proxy after the node: it reads the Node's addresses at its start.
	if cfg.ClusterCIDR != "" && cfg.KubeProxy != "off" && cfg.KubeProxy != "" {
		proxy, err := kubeproxy.New(kubeproxy.Options{
			RESTConfig: restConfig, Kubeconfig: dir.Join("kube-proxy.yaml"), NodeName: cfg.NodeName,
			ClusterCIDR: cfg.ClusterCIDR, LockPath: kubeproxy.LockPathForThisNetns(), DataDir: dir.Path,
			Required: cfg.KubeProxy == "on", Logger: cfg.Logger,
		})
		if err != nil {
			return nil, err
		}
		a.group.Add("kube-proxy", proxy)
	}
	if err := a.group.Start(ctx); err != nil {
		return nil, err
	}
	started = true
	return a, nil
}

// Failed is closed when a part fails; Err says why.
func (a *Agent) Failed() <-chan struct{} { return a.group.Failed() }

// Err is the first failure.
func (a *Agent) Err() error { return a.group.Err() }

// Stop stops the node, then the pods' network, and releases the data dir.
func (a *Agent) Stop(ctx context.Context) error {
	defer a.dir.Close()
	defer a.stopLB()
	return a.group.Stop(ctx)
}
