// Package standalone composes Gantry's parts into one process, as `gantry server` runs them:
// the embedded control plane, the embedded image registry, the Knative Serving stack (CRDs,
// configuration, admission webhook, controllers) and the serverless node, run as one
// lifecycle group. It is the only package that knows them all. Tests start the same
// composition through testenv.
package standalone

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/resource"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/gantry-run/gantry/internal/activator"
	"github.com/gantry-run/gantry/internal/apiservers"
	"github.com/gantry-run/gantry/internal/autoscaler/hpa"
	"github.com/gantry-run/gantry/internal/autoscaler/kpa"
	"github.com/gantry-run/gantry/internal/connpass"
	"github.com/gantry-run/gantry/internal/controlplane"
	"github.com/gantry-run/gantry/internal/controlplane/datadir"
	"github.com/gantry-run/gantry/internal/controlplane/pki"
	"github.com/gantry-run/gantry/internal/dashboard"
	"github.com/gantry-run/gantry/internal/dns"
	"github.com/gantry-run/gantry/internal/etcdsnapshot"
	"github.com/gantry-run/gantry/internal/gateway"
	"github.com/gantry-run/gantry/internal/gatewayservice"
	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/join"
	"github.com/gantry-run/gantry/internal/kubeproxy"
	"github.com/gantry-run/gantry/internal/leaderelect"
	"github.com/gantry-run/gantry/internal/lifecycle"
	"github.com/gantry-run/gantry/internal/metering"
	"github.com/gantry-run/gantry/internal/node"
	"github.com/gantry-run/gantry/internal/overlay"
	"github.com/gantry-run/gantry/internal/podnet"
	"github.com/gantry-run/gantry/internal/promserver"
	"github.com/gantry-run/gantry/internal/qpbin"
	"github.com/gantry-run/gantry/internal/resourcemetrics"
	"github.com/gantry-run/gantry/internal/sandbox"
	"github.com/gantry-run/gantry/internal/scalerelay"
	serverlessadmission "github.com/gantry-run/gantry/internal/serverless/admission"
	"github.com/gantry-run/gantry/internal/serverless/scheduler"
	"github.com/gantry-run/gantry/internal/serving"
	"github.com/gantry-run/gantry/internal/storage"
	"github.com/gantry-run/gantry/internal/tracing"
)

// Defaults for the parts this package adds to the control plane.
const (
	DefaultWebhookPort = 6444
	// DefaultAutoscalerPort is the autoscaler's endpoint for the other servers' activators.
	DefaultAutoscalerPort = 6446
	DefaultNodeName       = "gantry"
	DefaultKubeletPort    = 10250
	DefaultHTTPPort       = 8080
	DefaultHTTPAddress    = "127.0.0.1"
	// PodHTTPPort is the gateway's port on the pods' bridge, where the cluster URL of a
	// Route (http://<route>.<namespace>.svc.cluster.local) lands.
	PodHTTPPort = 80
)

// The leases the servers of a cluster that run their node elect by, in kube-system: the
// serverless scheduler's placement and the shared storage's provisioning. The Kubernetes
// leases (kube-controller-manager, kube-scheduler) and the serving controllers' are beside
// them.
const (
	SchedulerLease = "gantry-serverless-scheduler"
	StorageLease   = "gantry-shared-storage"
)

// Values of --kube-proxy.
const (
	// KubeProxyAuto runs kube-proxy unless another gantry server on this host runs it.
	KubeProxyAuto = "auto"
	// KubeProxyOn runs kube-proxy and refuses to start when another server runs it.
	KubeProxyOn = "on"
	// KubeProxyOff runs none: ClusterIPs are not routed.
	KubeProxyOff = "off"
)

// Values of --pod-egress-private.
const (
	// PodEgressDeny keeps the host's private ranges (its LAN) closed to pods.
	PodEgressDeny = "deny"
	// PodEgressAllow opens them.
	PodEgressAllow = "allow"
)

// Config is the whole server's configuration.
type Config struct {
	ControlPlane controlplane.Config
	// Serving runs Gantry's serving stack (CRDs, webhook, controllers, autoscaler, activator,
	// gateway, dashboard). Without it the server is a plain Kubernetes API and node: a cluster
	// for `gantry install` to install the stack onto (cluster mode).
	Serving bool
	// Domain is the suffix of Route hosts (default localhost).
	Domain string
	// HTTPAddress and HTTPPort are where the gateway serves Routes (0.0.0.0 serves the
	// network).
	HTTPAddress string
	HTTPPort    int
	// ActivatorQueueDepth bounds the requests that may wait for one revision's pods; more
	// get 503.
	ActivatorQueueDepth int
	// PassConnections lets the gateway pass kept-alive client connections to the
	// queue-proxies of this machine's pods (internal/connpass).
	PassConnections bool
	// WebhookPort is the admission webhook's port on loopback.
	WebhookPort int
	// AutoscalerPort is where, on a server of a cluster, the autoscaler takes the other
	// servers' activators' wake-ups and loads (HTTPS on the API's bind address; the serving
	// leader answers).
	AutoscalerPort int
	// RegistryAddr is the embedded registry's loopback address.
	RegistryAddr string
	// RegistryNodePort is where nodes read the embedded registry over the network (HTTPS on
	// the API's bind address, a node's client certificate required): agents on other machines
	// pull the images pods name with RegistryAddr from there. 0 serves none.
	RegistryNodePort int
	// Node runs the serverless node; without it pods stay Pending.
	Node bool
	// NodeName is the Node's name.
	NodeName string
	// KubeletPort is the port of the node's kubelet API (logs).
	KubeletPort int
	// PodCIDR is the range pod addresses come from. With ControlPlane.ClusterCIDR (node
	// IPAM and the overlay) it must lie inside that range; it is written in the Node's
	// spec.podCIDR, and node IPAM gives the other nodes the rest.
	PodCIDR string
	// VXLANVNI and VXLANPort are the overlay's, with ControlPlane.ClusterCIDR.
	VXLANVNI, VXLANPort int
	// Bridge is the host bridge the pods join; servers on one machine need their own
	// bridge and pod range.
	Bridge string
	// PodEgressPrivate says whether pods reach the private ranges of the host's network:
	// PodEgressDeny or PodEgressAllow.
	PodEgressPrivate string
	// AllowUnconfinedSeccomp lets pods that ask for seccompProfile Unconfined run without a
	// seccomp filter; by default they are refused.
	AllowUnconfinedSeccomp bool
	// DiskReserveBytes is the free space the data dir's filesystem keeps for etcd: below
	// it the node refuses image pulls and evicts pods, and the image store stops
	// unpacking. Zero means node.DefaultDiskReserveBytes; negative turns it off.
	DiskReserveBytes int64
	// AllowHostUsers lets pods that set spec.hostUsers: true run in the host's user
	// namespace; by default they are refused and every pod has a user namespace of its own.
	AllowHostUsers bool
	// ReservedCPU and ReservedMemory are quantities ("250m", "768Mi") of the machine kept
	// for gantry itself and the host: the shared node's allocatable is the machine less them.
	// Empty means node.DefaultReserved's.
	ReservedCPU, ReservedMemory string
	// QueueProxyBinary is the binary the node runs queue-proxies from (`BINARY
	// queue-proxy`); empty means the one this gantry carries (internal/qpbin), else this
	// process's own executable.
	QueueProxyBinary string
	// KubeProxy says whether the node's kube-proxy runs: KubeProxyAuto, KubeProxyOn or
	// KubeProxyOff.
	KubeProxy string
	// MetricsAddress is where the server's Prometheus metrics are served; empty serves none.
	MetricsAddress string
	// Profiling also serves Go's profiles at /debug/pprof/ on MetricsAddress.
	Profiling bool
	// OTLPEndpoint, when set, is the OTLP/HTTP collector that receives the request path's
	// spans (gateway, activator, queue-proxies); OTLPSamplingRatio is the share of new traces
	// recorded (a request that brings a sampled trace context is always recorded).
	OTLPEndpoint      string
	OTLPSamplingRatio float64
	// Dashboard serves the web console on the gateway's host gantry.localhost (and localhost,
	// and IP addresses); DashboardAddress, when set, is an address of its own. Loopback
	// clients only, unless DashboardTokenFile names a file whose token others present.
	Dashboard          bool
	DashboardAddress   string
	DashboardTokenFile string
	// EtcdSnapshotInterval is the time between two scheduled snapshots of etcd (0: none);
	// EtcdSnapshotRetention is how many of them are kept, the newest; EtcdSnapshotDir is
	// where they go (empty: <data-dir>/snapshots).
	EtcdSnapshotInterval  time.Duration
	EtcdSnapshotRetention int
	EtcdSnapshotDir       string
	// JoinServer, when set, is the URL of a server whose cluster this server joins
	// (--server), with JoinToken, that cluster's server token (--token).
	JoinServer string
	JoinToken  string
	// Logger receives the registry's, store's and node's logs.
	Logger *slog.Logger
}

// DefaultConfig has every default filled in.
func DefaultConfig() Config {
	return Config{
		ControlPlane:        controlplane.DefaultConfig(),
		Serving:             true,
		Domain:              serving.DefaultDomain,
		HTTPAddress:         DefaultHTTPAddress,
		HTTPPort:            DefaultHTTPPort,
		ActivatorQueueDepth: activator.DefaultQueueDepth,
		PassConnections:     true,
		WebhookPort:         DefaultWebhookPort,
		AutoscalerPort:      DefaultAutoscalerPort,
		RegistryAddr:        image.DefaultRegistryAddr,
		RegistryNodePort:    image.DefaultNodeAccessPort,
		Node:                true,
		NodeName:            DefaultNodeName,
		KubeletPort:         DefaultKubeletPort,
		PodCIDR:             sandbox.DefaultPodCIDR,
		VXLANVNI:            overlay.DefaultVNI,
		VXLANPort:           overlay.DefaultPort,
		Bridge:              sandbox.DefaultBridge,
		KubeProxy:           KubeProxyAuto,
		PodEgressPrivate:    PodEgressDeny,
		MetricsAddress:      promserver.DefaultAddr,
		OTLPSamplingRatio:   1,
		Dashboard:           true,
		ReservedCPU:         resource.NewMilliQuantity(node.DefaultReserved.CPUMillis, resource.DecimalSI).String(),
		ReservedMemory:      resource.NewQuantity(node.DefaultReserved.MemoryBytes, resource.BinarySI).String(),

		EtcdSnapshotInterval:  etcdsnapshot.DefaultInterval,
		EtcdSnapshotRetention: etcdsnapshot.DefaultRetention,
	}
}

// Validate checks the fields this package adds and names the flag of each wrong one.
func (c Config) Validate() error {
	var errs []error
	if err := c.ControlPlane.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.validateEtcdSnapshots(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.joinSource(); err != nil {
		errs = append(errs, err)
	}
	if c.WebhookPort < 1 || c.WebhookPort > 65535 {
		errs = append(errs, fmt.Errorf("--webhook-port: %d is not a port (1-65535)", c.WebhookPort))
	}
	if err := image.CheckLoopback(c.RegistryAddr); err != nil {
		errs = append(errs, fmt.Errorf("--registry-addr: %w", err))
	}
	if c.RegistryNodePort < 0 || c.RegistryNodePort > 65535 {
		errs = append(errs, fmt.Errorf("--registry-node-port: %d is not a port (1-65535, or 0 for none)", c.RegistryNodePort))
	}
	if c.Node {
		if c.KubeletPort < 1 || c.KubeletPort > 65535 {
			errs = append(errs, fmt.Errorf("--kubelet-port: %d is not a port (1-65535)", c.KubeletPort))
		}
		if _, _, err := net.ParseCIDR(c.PodCIDR); err != nil {
			errs = append(errs, fmt.Errorf("--pod-cidr: %q is not a CIDR", c.PodCIDR))
		} else if err := checkPodCIDRInCluster(c.PodCIDR, c.ControlPlane.ClusterCIDR); err != nil {
			errs = append(errs, err)
		}
		if _, err := c.reserved(); err != nil {
			errs = append(errs, err)
		}
		if msgs := validation.IsDNS1123Subdomain(c.NodeName); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--node-name: %q: %s", c.NodeName, strings.Join(msgs, "; ")))
		}
		switch c.KubeProxy {
		case KubeProxyAuto, KubeProxyOn, KubeProxyOff:
		default:
			errs = append(errs, fmt.Errorf("--kube-proxy: %q is not one of %s, %s, %s", c.KubeProxy, KubeProxyAuto, KubeProxyOn, KubeProxyOff))
		}
		switch c.PodEgressPrivate {
		case PodEgressDeny, PodEgressAllow:
		default:
			errs = append(errs, fmt.Errorf("--pod-egress-private: %q is not one of %s, %s", c.PodEgressPrivate, PodEgressDeny, PodEgressAllow))
		}
	}
	if c.HTTPPort < 1 || c.HTTPPort > 65535 {
		errs = append(errs, fmt.Errorf("--http-port: %d is not a port (1-65535)", c.HTTPPort))
	}
	if c.AutoscalerPort < 1 || c.AutoscalerPort > 65535 {
		errs = append(errs, fmt.Errorf("--autoscaler-port: %d is not a port (1-65535)", c.AutoscalerPort))
	}
	if c.ActivatorQueueDepth < 1 {
		errs = append(errs, fmt.Errorf("--activator-queue-depth: %d must be at least 1", c.ActivatorQueueDepth))
	}
	if net.ParseIP(c.HTTPAddress) == nil {
		errs = append(errs, fmt.Errorf("--http-address: %q is not an IP address", c.HTTPAddress))
	}
	if c.Domain == "" {
		errs = append(errs, errors.New("--domain: must not be empty"))
	}
	if c.MetricsAddress != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddress); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-address: %q is not host:port", c.MetricsAddress))
		}
	} else if c.Profiling {
		errs = append(errs, errors.New("--profiling: needs --metrics-address, where the profiles are served"))
	}
	if c.OTLPEndpoint != "" {
		if _, err := tracing.ParseEndpoint(c.OTLPEndpoint); err != nil {
			errs = append(errs, fmt.Errorf("--otlp-endpoint: %w", err))
		}
	}
	if c.OTLPSamplingRatio < 0 || c.OTLPSamplingRatio > 1 {
		errs = append(errs, fmt.Errorf("--otlp-sampling-ratio: %v is not between 0 and 1", c.OTLPSamplingRatio))
	}
	if !c.Serving {
		if c.Dashboard {
			errs = append(errs, errors.New("--dashboard: needs the serving stack; --serving=false runs none (add --dashboard=false)"))
		}
		if c.OTLPEndpoint != "" {
			errs = append(errs, errors.New("--otlp-endpoint: traces the serving stack's request path; --serving=false runs none"))
		}
	}
	if c.Dashboard {
		if c.DashboardAddress != "" {
			if _, _, err := net.SplitHostPort(c.DashboardAddress); err != nil {
				errs = append(errs, fmt.Errorf("--dashboard-address: %q is not host:port", c.DashboardAddress))
			}
		}
		if c.DashboardTokenFile != "" {
			if _, err := c.dashboardToken(); err != nil {
				errs = append(errs, err)
			}
		}
	} else if c.DashboardAddress != "" || c.DashboardTokenFile != "" {
		errs = append(errs, errors.New("--dashboard-address and --dashboard-token-file need --dashboard"))
	}
	return errors.Join(errs...)
}

// dashboardToken reads the token of --dashboard-token-file: its first line, which must have
// at least 16 characters (a guessable token opens the dashboard to the network).
func (c Config) dashboardToken() (string, error) {
	if c.DashboardTokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(c.DashboardTokenFile)
	if err != nil {
		return "", fmt.Errorf("--dashboard-token-file: %w", err)
	}
	token, _, _ := strings.Cut(string(b), "\n")
	token = strings.TrimSpace(token)
	if len(token) < 16 {
		return "", fmt.Errorf("--dashboard-token-file %s: the token has %d characters, want at least 16", c.DashboardTokenFile, len(token))
	}
	return token, nil
}

// Server is a standalone Gantry: its parts, run as one lifecycle group in the order the
// fields list them.
type Server struct {
	ControlPlane *controlplane.ControlPlane
	Registry     *image.Registry
	// RegistryNodes serves the registry to the cluster's nodes (nil with
	// --registry-node-port=0).
	RegistryNodes *image.NodeAccess
	Store         *image.Store
	// PodNetwork, DNS and KubeProxy let pods call Services by name, and run with the node:
	// the bridge with the pods' gateway address, the cluster DNS on that address (in the
	// serving manager), and kube-proxy for ClusterIPs (nil with --kube-proxy=off).
	PodNetwork *podnet.Network
	// Overlay joins this node's pods to other nodes' (with --cluster-cidr).
	Overlay *overlay.Overlay
	Serving *serving.Serving
	// Profiles admits pods and ServerlessProfiles and runs the profile controller, in the
	// serving manager.
	Profiles *serverlessadmission.Webhooks
	// Metering keeps the usage records of serverless pods in <data-dir>/metering.
	Metering *metering.Meter
	// Metrics serves the parts' Prometheus metrics (nil without --metrics-address).
	Metrics    *promserver.Server
	Autoscaler *kpa.Autoscaler
	Activator  *activator.Activator
	Gateway    *gateway.Gateway
	// Passer passes the gateway's client connections to this machine's queue-proxies (nil
	// with --pass-connections=false or without the node).
	Passer *connpass.Passer
	// ScaleServer and ScaleRelay carry the activator's wake-ups and loads to the serving
	// leader's autoscaler, on a server of a cluster (nil on a single server).
	ScaleServer *scalerelay.Server
	ScaleRelay  *scalerelay.Relay
	// GatewayService publishes this server's gateway in the Service kube-system/gantry-gateway
	// (with the node and --cluster-cidr), which pods on agents call Knative Services through.
	GatewayService *gatewayservice.Publisher
	// podAddresses tells pods from the nodes' host networks on the gateway's pods' side.
	podAddresses *gateway.PodAddresses
	// Join keeps the agents' join token and approves their certificates.
	Join *join.Service
	// Dashboard is the web console (nil with --dashboard=false).
	Dashboard *dashboard.Dashboard
	DNS       *dns.Server
	Node      *node.Node
	Sandboxes *sandbox.Manager
	// ResourceMetrics serves metrics.k8s.io for the node's pods (kubectl top, the HPA).
	ResourceMetrics *resourcemetrics.Server
	KubeProxy       *kubeproxy.Proxy
	// Scheduler places the pods serverless profiles select, each on a node of its own.
	Scheduler *scheduler.Scheduler
	// Storage provisions the shared storage's claims (StorageClass gantry-shared).
	Storage *storage.Provisioner
	// EtcdSnapshots takes etcd's scheduled snapshots (nil with --etcd-snapshot-interval=0).
	EtcdSnapshots *etcdsnapshot.Scheduler

	group *lifecycle.Group
	// nodeInfo describes the node agent, and serverlessClient acts for the serverless
	// scheduler and the agent's serverless nodes.
	nodeInfo         node.NodeInfo
	serverlessClient kubernetes.Interface
}

// New checks cfg and every address, prepares the data dir, and builds every part without
// starting any. Bad input fails before anything in the data dir is touched.
func New(ctx context.Context, cfg Config) (s *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	webhookAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.WebhookPort))
	listeners := []controlplane.Listener{{Flag: "--registry-addr", Addr: cfg.RegistryAddr}}
	if cfg.RegistryNodePort != 0 {
		listeners = append(listeners, controlplane.Listener{Flag: "--registry-node-port", Addr: registryNodeAddr(cfg)})
	}
	if cfg.Serving {
		listeners = append(listeners,
			controlplane.Listener{Flag: "--webhook-port", Addr: webhookAddr},
			controlplane.Listener{Flag: "--http-port", Addr: httpAddr(cfg)})
	}
	if cfg.Node {
		listeners = append(listeners, controlplane.Listener{Flag: "--kubelet-port", Addr: kubeletAddr(cfg)})
	}
	if err := controlplane.CheckListeners(listeners...); err != nil {
		return nil, err
	}
	if cfg.ControlPlane.Join, err = cfg.joinSource(); err != nil {
		return nil, err
	}
	cp, err := controlplane.New(cfg.ControlPlane)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			cp.Close()
		}
	}()
	s = &Server{ControlPlane: cp, group: lifecycle.NewGroup(cfg.Logger)}
	s.group.Add("control plane", cp)
	if err := s.addEtcdSnapshots(cfg); err != nil {
		return nil, err
	}
	// Agents join with the token in <data-dir>/token (gantry agent).
	if s.Join, err = newJoin(cfg, cp); err != nil {
		return nil, err
	}
	s.group.Add("join", s.Join)
	if cfg.ControlPlane.Clustered() {
		// <data-dir>/api-servers: where gantry kubectl finds the other servers when this one
		// is down.
		client, err := kubernetes.NewForConfig(cp.GantryRESTConfig())
		if err != nil {
			return nil, err
		}
		s.group.Add("api servers list", &apiservers.Cache{Client: client, Path: cp.DataDirJoin(apiservers.FileName), Log: cfg.Logger.With("component", "api-servers")})
	}
	if cfg.ControlPlane.ClusterCIDR != "" {
		// Every node's overlay (the agents' too) watches all Nodes.
		client, err := kubernetes.NewForConfig(cp.GantryRESTConfig())
		if err != nil {
			return nil, err
		}
		s.group.Add("overlay grant", overlay.NewGrant(client))
	}

	s.Registry, err = image.NewRegistry(image.RegistryOptions{Addr: cfg.RegistryAddr, Dir: cp.DataDirJoin(datadir.RegistryDir), Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	s.group.Add("embedded registry", s.Registry)
	if cfg.RegistryNodePort != 0 {
		if err := s.addRegistryNodes(cfg); err != nil {
			return nil, err
		}
	}
	if cfg.MetricsAddress != "" {
		if s.Metrics, err = promserver.New(cfg.MetricsAddress, promserver.Options{
			Profiling: cfg.Profiling,
			// The embedded control plane's own metrics (API server, etcd, scheduler), apart.
			Components: controlplane.MetricsGatherers(),
			Logger:     cfg.Logger,
		}); err != nil {
			return nil, err
		}
		s.group.Add("metrics", s.Metrics)
	}
	tracer, err := tracing.New(tracing.Options{Endpoint: cfg.OTLPEndpoint, Service: "gantry", SamplingRatio: cfg.OTLPSamplingRatio})
	if err != nil {
		return nil, fmt.Errorf("--otlp-endpoint: %w", err)
	}
	var traceRelay http.Handler
	// queueTracing is where queue-proxies send their spans: the relay on the gateway's
	// address on the bridge, which forwards them to the collector.
	var queueTracing string
	if tracer != nil {
		s.group.Add("tracing", tracer)
		endpoint, _ := tracing.ParseEndpoint(cfg.OTLPEndpoint)
		traceRelay = tracing.Relay(endpoint)
	}
	gatewayListeners := []gateway.Listener{{Addr: httpAddr(cfg)}}
	if cfg.Node {
		// The pods' network comes before the serving stack: the gateway's listener for pods
		// and the DNS server bind the pods' gateway address on the bridge.
		s.PodNetwork, err = podnet.New(podnet.Options{Policy: podnet.Policy{
			Bridge:      cfg.Bridge,
			PodCIDR:     cfg.PodCIDR,
			ServiceCIDR: cfg.ControlPlane.ServiceCIDR,
			ClusterCIDR: cfg.ControlPlane.ClusterCIDR,
			// The cluster DNS and the gateway's listener for pods.
			GatewayPorts:  []podnet.Port{{Proto: "udp", Port: 53}, {Proto: "tcp", Port: 53}, {Proto: "tcp", Port: PodHTTPPort}},
			APIServerPort: cfg.ControlPlane.HTTPSPort,
			EgressPrivate: cfg.PodEgressPrivate == PodEgressAllow,
		}, Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("--pod-cidr, --bridge, --service-cidr: %w", err)
		}
		s.group.Add("pod network", s.PodNetwork)
		gw := s.PodNetwork.Gateway()
		// The bridge address is reached by this node's pods, other nodes' pods over the
		// overlay, and the host networks of this node and of the others (from their addresses
		// in the pod network): only the pods see cluster-local hosts.
		podNetwork := cmp.Or(cfg.ControlPlane.ClusterCIDR, cfg.PodCIDR)
		gwAddr, _ := netip.AddrFromSlice(gw)
		if s.podAddresses, err = gateway.NewPodAddresses([]string{podNetwork}, append(gateway.NodeAddresses([]string{cfg.PodCIDR}), gwAddr.Unmap())...); err != nil {
			return nil, fmt.Errorf("--pod-cidr, --cluster-cidr: %w", err)
		}
		gatewayListeners = append(gatewayListeners, gateway.Listener{Addr: net.JoinHostPort(gw.String(), strconv.Itoa(PodHTTPPort)), FromPods: true, Pods: s.podAddresses.IsPod})
		if tracer != nil {
			queueTracing = "http://" + net.JoinHostPort(gw.String(), strconv.Itoa(PodHTTPPort))
		}
		s.DNS = dns.New(dns.Options{Addr: gw, Gateway: gw, WithoutIngresses: !cfg.Serving, Logger: cfg.Logger})
	}
	s.Store, err = image.NewStore(cp.DataDirJoin(datadir.ImagesDir), image.StoreOptions{Logger: cfg.Logger, MinFreeBytes: diskReserve(cfg)})
	if err != nil {
		return nil, err
	}

	var registerer prometheus.Registerer
	if s.Metrics != nil {
		registerer = s.Metrics.Registry
	}
	if !cfg.Serving {
		// A plain cluster: the pods' DNS still answers, from a manager of its own.
		if s.DNS != nil {
			if err := s.addBareDNS(cfg); err != nil {
				return nil, err
			}
		}
	} else {
		certs := cp.Certs()
		// On a server of a cluster, its identity in the serving leader's Lease names its
		// autoscaler's endpoint, where the other servers' activators reach the leader.
		var identity, endpointAddr string
		if cfg.ControlPlane.Clustered() {
			endpointAddr = net.JoinHostPort(cfg.ControlPlane.BindAddress, strconv.Itoa(cfg.AutoscalerPort))
			if identity, err = scalerelay.Identity(scalerelay.EndpointURL(cmp.Or(cfg.ControlPlane.AdvertiseAddress, "127.0.0.1"), cfg.AutoscalerPort)); err != nil {
				return nil, err
			}
		}
		s.Serving, err = serving.New(serving.Options{
			RESTConfig:      cp.GantryRESTConfig(),
			Domain:          cfg.Domain,
			WebhookHost:     "127.0.0.1",
			WebhookPort:     cfg.WebhookPort,
			WebhookCertFile: certs.WebhookCert(),
			WebhookKeyFile:  certs.WebhookKey(),
			CAFile:          certs.CACert(),
			Resolver:        s.Store,
			Logger:          cfg.Logger,
			// The queue-proxies trace when the server does, at its ratio.
			QueueTracingEndpoint:      queueTracing,
			QueueTracingSamplingRatio: cfg.OTLPSamplingRatio,
			LeaderElection:            cfg.ControlPlane.Clustered(),
			LeaderElectionIdentity:    identity,
		})
		if err != nil {
			return nil, fmt.Errorf("serving controllers: %w", err)
		}
		// The data plane joins the serving manager: the autoscaler scales revisions, the
		// activator holds requests for revisions without a free pod (and asks the autoscaler for
		// one), the gateway serves Routes' hosts and hands requests to it.
		mgr := s.Serving.Manager()
		switch {
		case s.Metrics != nil:
			registerer = s.Metrics.Registry
		case cfg.Dashboard:
			// The dashboard draws from the parts' metrics: they are collected, not served.
			registerer = prometheus.NewRegistry()
		}
		s.Autoscaler = kpa.New(kpa.Options{
			Client:     mgr.GetClient(),
			Config:     s.Serving.Config(),
			Recorder:   mgr.GetEventRecorder("autoscaler"),
			Registerer: registerer,
			Logger:     cfg.Logger,
		})
		var scaler activator.Scaler = s.Autoscaler
		var reporter activator.Reporter = s.Autoscaler
		if cfg.ControlPlane.Clustered() {
			// The autoscaler acts on the serving leader only: the activator's wake-ups and
			// loads go there, in-process on the leader, over the autoscaler's endpoint elsewhere.
			if err := s.addScaleRelay(cfg, endpointAddr, mgr, registerer); err != nil {
				return nil, err
			}
			scaler, reporter = s.ScaleRelay, s.ScaleRelay
		}
		// The gateway and the activator reach this machine's revision pods through their
		// queue-proxies' sockets (Node.DialPod), other pods over TCP. The node is made
		// below, before anything is served.
		tcp := (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		dialPod := func(ctx context.Context, network, addr string) (net.Conn, error) {
			if s.Node != nil {
				return s.Node.DialPod(ctx, network, addr, tcp)
			}
			return tcp(ctx, network, addr)
		}
		s.Activator = activator.New(activator.Options{
			Client:     mgr.GetClient(),
			Scaler:     scaler,
			Reporter:   reporter,
			Registerer: registerer,
			QueueDepth: int64(cfg.ActivatorQueueDepth),
			Logger:     cfg.Logger,
			Tracer:     tracer,
			DialPod:    dialPod,
		})
		if cfg.Dashboard {
			token, err := cfg.dashboardToken()
			if err != nil {
				return nil, err
			}
			kube, err := kubernetes.NewForConfig(cp.GantryRESTConfig())
			if err != nil {
				return nil, err
			}
			// The dashboard samples every two seconds: from a registry of the few metrics it
			// reads, not the server's whole registry (eight gauges per revision).
			sampled := prometheus.NewRegistry()
			for _, c := range slices.Concat(s.Autoscaler.DashboardCollectors(), s.Activator.DashboardCollectors()) {
				if err := sampled.Register(c); err != nil {
					return nil, fmt.Errorf("dashboard: %w", err)
				}
			}
			s.Dashboard = dashboard.New(dashboard.Options{
				Gatherer: sampled,
				Kube:     kube,
				UsageDB:  cp.DataDirJoin(metering.DBPath),
				Token:    token,
				Addr:     cfg.DashboardAddress,
				// The URLs of Routes have no port; the page's links take the gateway's.
				GatewayPort: cfg.HTTPPort,
				Logger:      cfg.Logger,
			})
			s.Serving.Add(s.Dashboard)
		}
		var console gateway.Console
		if s.Dashboard != nil {
			console = s.Dashboard
		}
		if cfg.PassConnections && cfg.Node {
			s.Passer = &connpass.Passer{Log: cfg.Logger, Dial: func(ctx context.Context, addr string) (*net.UnixConn, error) {
				if s.Node == nil {
					return nil, errors.New("no node")
				}
				return s.Node.DialPass(ctx, addr)
			}}
		}
		s.Gateway = gateway.New(gateway.Options{
			Console:    console,
			Client:     mgr.GetClient(),
			Revisions:  s.Activator,
			Listeners:  gatewayListeners,
			Logger:     cfg.Logger,
			Tracer:     tracer,
			TraceRelay: traceRelay,
			DialPod:    dialPod,
			Passer:     s.Passer,
		})
		s.Serving.Add(s.Autoscaler)
		s.Serving.Add(hpa.New(hpa.Options{Client: mgr.GetClient(), Config: s.Serving.Config(), Logger: cfg.Logger}))
		s.Serving.Add(s.Activator)
		s.Serving.Add(s.Gateway)
		if s.podAddresses != nil {
			s.Serving.Add(s.podAddresses)
		}
		if s.DNS != nil {
			s.Serving.Add(s.DNS)
		}
		s.group.Add("serving controllers", s.Serving)
		if cfg.Node && cfg.ControlPlane.ClusterCIDR != "" {
			// Pods on agents reach the servers' gateways through one ClusterIP.
			if err := s.addGatewayService(cfg); err != nil {
				return nil, err
			}
		}
		// Serverless profiles: pod and profile admission and the profile controller join the
		// serving manager; their webhook configurations are registered once it serves.
		profilesClient, err := kubernetes.NewForConfig(cp.GantryRESTConfig())
		if err != nil {
			return nil, err
		}
		s.Profiles = serverlessadmission.NewWebhooks(profilesClient, "https://"+webhookAddr, certs.CACert(), s.Serving.Config())
		s.Serving.Add(s.Profiles)
		s.group.Add("serverless admission", s.Profiles)
	}

	// Metering reads pods through the API, and is ready once the records left open by the
	// last run are reconciled: before the node syncs pods again.
	meterClient, err := kubernetes.NewForConfig(cp.GantryRESTConfig())
	if err != nil {
		return nil, err
	}
	if s.Metering, err = metering.New(metering.Options{
		Client:     meterClient,
		DBPath:     cp.DataDirJoin(metering.DBPath),
		Registerer: registerer,
		Logger:     cfg.Logger,
	}); err != nil {
		return nil, err
	}
	s.group.Add("metering", s.Metering)

	if cfg.Node {
		if err := s.newNode(ctx, cfg); err != nil {
			return nil, fmt.Errorf("serverless node: %w", err)
		}
		s.group.Add("serverless node", s.Node)
		if cfg.ControlPlane.ClusterCIDR != "" {
			// After the node: flannel's lease is the Node's spec.podCIDR, which it registers.
			if err := s.newOverlay(cfg); err != nil {
				return nil, err
			}
			s.group.Add("overlay", s.Overlay)
		}
		schedOpts := scheduler.Options{
			Client:  s.serverlessClient,
			PodCIDR: cfg.PodCIDR,
			Agent:   s.nodeInfo,
			Logger:  cfg.Logger,
		}
		if cfg.ControlPlane.Clustered() {
			// Every server with a node keeps its own machine's serverless nodes; one at a
			// time places pods (a single server needs no lease: it is the only one).
			schedOpts.Elect = func(ctx context.Context, place func(context.Context) error) error {
				return leaderelect.Run(ctx, cp.GantryRESTConfig(), SchedulerLease, place)
			}
		}
		if s.Scheduler, err = scheduler.New(schedOpts); err != nil {
			return nil, fmt.Errorf("serverless scheduler: %w", err)
		}
		s.group.Add("serverless scheduler", s.Scheduler)
		// Shared storage serves claims from directories on this machine, which the node
		// mounts: it runs where the node does.
		storageClient, err := kubernetes.NewForConfig(cp.GantryRESTConfig())
		if err != nil {
			return nil, err
		}
		storageOpts := storage.Options{
			Client: storageClient,
			Dir:    cp.DataDirJoin(datadir.SharedVolumesDir),
			Logger: cfg.Logger,
		}
		if cfg.ControlPlane.Clustered() {
			// Each server reclaims the volumes whose directories it holds; one at a time
			// makes new ones.
			storageOpts.NodeName = cfg.NodeName
			storageOpts.Elect = func(ctx context.Context, provision func(context.Context) error) error {
				return leaderelect.Run(ctx, cp.GantryRESTConfig(), StorageLease, provision)
			}
		}
		if s.Storage, err = storage.NewProvisioner(storageOpts); err != nil {
			return nil, err
		}
		s.group.Add("shared storage", s.Storage)
		if err := s.newResourceMetrics(cfg); err != nil {
			return nil, fmt.Errorf("resource metrics: %w", err)
		}
		// kube-proxy runs for the registered node: it reads the Node's addresses at start.
		if cfg.KubeProxy != KubeProxyOff {
			s.KubeProxy, err = kubeproxy.New(kubeproxy.Options{
				RESTConfig:  cp.GantryRESTConfig(),
				Kubeconfig:  cp.DataDirJoin(datadir.KubeconfigsDir, "kube-proxy.yaml"),
				DataDir:     cp.DataDir(),
				NodeName:    cfg.NodeName,
				ClusterCIDR: cmp.Or(cfg.ControlPlane.ClusterCIDR, cfg.PodCIDR),
				Required:    cfg.KubeProxy == KubeProxyOn,
				Logger:      cfg.Logger,
			})
			if err != nil {
				return nil, err
			}
			s.group.Add("kube-proxy", s.KubeProxy)
		}
	}
	return s, nil
}

// Start is New followed by Server.Start: it returns once every part is ready.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	s, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Start starts the parts in order and returns once the last is ready: the API serves the
// serving.knative.dev kinds with admission in place, a pod can be created in the default
// namespace, and the node syncs pods. ctx bounds the start; on failure every part already
// started is stopped.
func (s *Server) Start(ctx context.Context) error {
	if err := s.group.Start(ctx); err != nil {
		return err
	}
	if s.Node != nil {
		if err := ensureRuntimeClass(ctx, s.ControlPlane.RESTConfig()); err != nil {
			return errors.Join(err, s.group.Stop(context.WithoutCancel(ctx)))
		}
	}
	return nil
}

// Failed is closed when a part stops on its own; Err then names it and says why.
func (s *Server) Failed() <-chan struct{} { return s.group.Failed() }

// Err is the first part's failure, or nil.
func (s *Server) Err() error { return s.group.Err() }

// Stop stops the parts in reverse order: kube-proxy, node, serving, pod network, registry,
// then the control plane; ctx bounds the whole. Sandboxes keep running, and so do the bridge
// and kube-proxy's rules; the next start re-adopts them.
func (s *Server) Stop(ctx context.Context) error {
	return s.group.Stop(ctx)
}

// kubeletAddr is where the node's kubelet API listens: the node's InternalIP, the address
// the API server reaches it at.
func kubeletAddr(cfg Config) string {
	return net.JoinHostPort(nodeIP(cfg.ControlPlane.AdvertiseAddress).String(), strconv.Itoa(cfg.KubeletPort))
}

// httpAddr is the gateway's address for Routes.
func httpAddr(cfg Config) string {
	return net.JoinHostPort(cfg.HTTPAddress, strconv.Itoa(cfg.HTTPPort))
}

// newNode builds the serverless node and its sandbox manager.
func (s *Server) newNode(ctx context.Context, cfg Config) error {
	cp := s.ControlPlane
	// A pod's root, a uid of its own in its user namespace, must be able to pass through the
	// data dir to its sandbox (search, not list: what is private below stays so).
	if err := sandbox.MakeSearchable(cp.DataDir()); err != nil {
		return err
	}
	// The directories above it must let the pods pass too: say so now, not pod by pod.
	if err := sandbox.CheckSearchable(cp.DataDir()); err != nil {
		return fmt.Errorf("--data-dir: %w (or choose a data dir such as /var/lib/gantry)", err)
	}
	sandboxes, err := sandbox.NewManager(ctx, sandbox.Options{Root: cp.DataDirJoin(datadir.SandboxesDir), PodCIDR: cfg.PodCIDR, Bridge: cfg.Bridge,
		NoMasquerade: true, Logger: cfg.Logger.With("component", "sandbox")})
	if err != nil {
		return err
	}
	s.Sandboxes = sandboxes
	qp := cfg.QueueProxyBinary
	if qp == "" {
		if qp, err = qpbin.Binary(cp.DataDirJoin(datadir.BinDir)); err != nil {
			return err
		}
	}
	// The node acts as a node, not as Gantry: the API server holds it to its own Node and
	// the pods bound to it, as it holds a kubelet.
	nodeConfig, err := cp.NodeRESTConfig(cfg.NodeName)
	if err != nil {
		return err
	}
	clientset, err := kubernetes.NewForConfig(nodeConfig)
	if err != nil {
		return err
	}
	// The serverless nodes are the server's own (its scheduler made them, one per pod): the
	// agent serves their pods as Gantry, where a node identity could reach only its own.
	if s.serverlessClient, err = kubernetes.NewForConfig(cp.GantryRESTConfig()); err != nil {
		return err
	}
	podCIDR, err := netip.ParsePrefix(cfg.PodCIDR)
	if err != nil {
		return fmt.Errorf("--pod-cidr: %w", err)
	}
	serverlessNodes, err := sandbox.ServerlessRange(podCIDR.Masked())
	if err != nil {
		return fmt.Errorf("--pod-cidr: %w", err)
	}
	ip := nodeIP(cfg.ControlPlane.AdvertiseAddress)
	reserved, err := cfg.reserved()
	if err != nil {
		return err
	}
	s.nodeInfo = node.MachineInfo(cfg.NodeName, ip, cfg.KubeletPort, cp.DataDir())
	s.nodeInfo.Reserved = reserved
	if cfg.ControlPlane.ClusterCIDR != "" {
		s.nodeInfo.PodCIDR = cfg.PodCIDR
	}
	certs := cp.Certs()
	// The API server checks the kubelet API's certificate against the CA at the node's
	// InternalIP (the serverless nodes' too: they have the same).
	kubeletCert, kubeletKey, err := cp.KubeletServingCert(cfg.NodeName, []string{cfg.NodeName, ip.String(), "localhost", "127.0.0.1"})
	if err != nil {
		return err
	}
	var registerer prometheus.Registerer // nil without --metrics-address: the node observes nothing
	if s.Metrics != nil {
		registerer = s.Metrics.Registry
	}
	s.Node, err = node.New(node.Options{
		Info:             s.nodeInfo,
		Client:           clientset,
		Sandboxes:        sandboxes,
		Images:           s.Store,
		StateDir:         cp.DataDirJoin(datadir.NodeDir),
		QueueProxyBinary: qp,
		KubeletCertFile:  kubeletCert,
		KubeletKeyFile:   kubeletKey,
		ClientCAFile:     certs.CACert(),
		ClusterDNS:       s.PodNetwork.Gateway(),
		Logger:           cfg.Logger,

		AllowUnconfinedSeccomp: cfg.AllowUnconfinedSeccomp,
		DiskReserveBytes:       cfg.DiskReserveBytes,
		AllowHostUsers:         cfg.AllowHostUsers,
		ServerlessClient:       s.serverlessClient,
		ServerlessNodes:        serverlessNodes,
		SharedVolumesDir:       cp.DataDirJoin(datadir.SharedVolumesDir),
		Registerer:             registerer,
	})
	return err
}

// newOverlay builds the node's part of the overlay, as the node (its Node's annotations).
func (s *Server) newOverlay(cfg Config) error {
	nodeConfig, err := s.ControlPlane.NodeRESTConfig(cfg.NodeName)
	if err != nil {
		return err
	}
	s.Overlay, err = overlay.New(overlay.Options{
		NodeName: cfg.NodeName, ClusterCIDR: cfg.ControlPlane.ClusterCIDR,
		PublicIP: nodeIP(cfg.ControlPlane.AdvertiseAddress), VNI: cfg.VXLANVNI, Port: cfg.VXLANPort,
		RESTConfig: nodeConfig, StateDir: s.ControlPlane.DataDirJoin(datadir.OverlayDir), Logger: cfg.Logger,
	})
	return err
}

// addScaleRelay makes the autoscaler's endpoint (on addr) and the activator's relay to the
// leader's, both authenticated by the cluster CA: the endpoint presents the API server's
// serving certificate and takes the certificate of Gantry's controllers, which every server
// of the cluster has and no agent.
func (s *Server) addScaleRelay(cfg Config, addr string, mgr manager.Manager, registerer prometheus.Registerer) error {
	pool, servingCert, err := s.servingTLS()
	if err != nil {
		return fmt.Errorf("the autoscaler endpoint: %w", err)
	}
	certs := s.ControlPlane.Certs()
	client, err := tls.LoadX509KeyPair(certs.ClientCert(pki.Gantry), certs.ClientKey(pki.Gantry))
	if err != nil {
		return fmt.Errorf("the autoscaler relay's certificate: %w", err)
	}
	s.ScaleServer, err = scalerelay.NewServer(scalerelay.ServerOptions{
		Addr: addr, Local: s.Autoscaler, Elected: mgr.Elected(),
		Cert: servingCert, ClientCAs: pool, ClientName: pki.Gantry.User, Logger: cfg.Logger,
	})
	if err != nil {
		return fmt.Errorf("--autoscaler-port: %w", err)
	}
	kube, err := kubernetes.NewForConfig(s.ControlPlane.GantryRESTConfig())
	if err != nil {
		return err
	}
	s.ScaleRelay, err = scalerelay.NewRelay(scalerelay.RelayOptions{
		Local: s.Autoscaler, Elected: mgr.Elected(), Client: kube, LeaseName: serving.LeaderElectionID,
		TLS:    &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, Certificates: []tls.Certificate{client}},
		Logger: cfg.Logger, Registerer: registerer,
	})
	if err != nil {
		return err
	}
	s.Serving.Add(s.ScaleServer)
	s.Serving.Add(s.ScaleRelay)
	return nil
}

// servingTLS is what the server's own TLS endpoints beside the API server present and trust:
// the cluster CA, to verify clients, and the API server's serving certificate.
func (s *Server) servingTLS() (*x509.CertPool, tls.Certificate, error) {
	certs := s.ControlPlane.Certs()
	caPEM, err := os.ReadFile(certs.CACert())
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, tls.Certificate{}, fmt.Errorf("%s: no certificate", certs.CACert())
	}
	cert, err := tls.LoadX509KeyPair(certs.ServingCert(), certs.ServingKey())
	if err != nil {
		return nil, tls.Certificate{}, fmt.Errorf("the serving certificate: %w", err)
	}
	return pool, cert, nil
}

// registryNodeAddr is where nodes read the embedded registry: the API server's bind address.
func registryNodeAddr(cfg Config) string {
	return net.JoinHostPort(cfg.ControlPlane.BindAddress, strconv.Itoa(cfg.RegistryNodePort))
}

// addRegistryNodes serves the embedded registry to the cluster's nodes, as the API server is
// served: its serving certificate (which covers the addresses agents reach the server at),
// and the cluster CA for the clients, of which only nodes' certificates are taken.
func (s *Server) addRegistryNodes(cfg Config) error {
	pool, cert, err := s.servingTLS()
	if err != nil {
		return fmt.Errorf("the registry for nodes: %w", err)
	}
	s.RegistryNodes, err = s.Registry.NewNodeAccess(image.NodeAccessOptions{
		Addr: registryNodeAddr(cfg), Cert: cert, ClientCAs: pool, Logger: cfg.Logger,
	})
	if err != nil {
		return fmt.Errorf("--registry-node-port: %w", err)
	}
	s.group.Add("registry for nodes", s.RegistryNodes)
	return nil
}

// addGatewayService publishes this server's gateway on the pods' bridge as an endpoint of the
// Service kube-system/gantry-gateway, which agents' DNS answers Knative Services' cluster
// names with.
func (s *Server) addGatewayService(cfg Config) error {
	kube, err := kubernetes.NewForConfig(s.ControlPlane.GantryRESTConfig())
	if err != nil {
		return err
	}
	addr, _ := netip.AddrFromSlice(s.PodNetwork.Gateway())
	s.GatewayService, err = gatewayservice.New(gatewayservice.Options{
		Client: kube, Node: cfg.NodeName, Address: addr.Unmap(), Port: PodHTTPPort, Logger: cfg.Logger,
	})
	if err != nil {
		return err
	}
	s.group.Add("gateway service", s.GatewayService)
	return nil
}

// checkPodCIDRInCluster refuses a pod range outside the cluster's (node IPAM's) range.
func checkPodCIDRInCluster(podCIDR, clusterCIDR string) error {
	if clusterCIDR == "" {
		return nil
	}
	_, p, _ := net.ParseCIDR(podCIDR)
	_, c, err := net.ParseCIDR(clusterCIDR)
	if err != nil {
		return nil // --cluster-cidr's own check names it
	}
	po, _ := p.Mask.Size()
	co, _ := c.Mask.Size()
	if !c.Contains(p.IP) || po < co {
		return fmt.Errorf("--pod-cidr %s: not inside --cluster-cidr %s (leave --pod-cidr out: the server's node takes the range's first block)", p, c)
	}
	return nil
}

// FirstNodeCIDR is the first node-sized block of clusterCIDR: the server's node's range when
// --pod-cidr is not given.
func FirstNodeCIDR(clusterCIDR string, maskSize int) (string, error) {
	_, c, err := net.ParseCIDR(clusterCIDR)
	if err != nil {
		return "", fmt.Errorf("--cluster-cidr: %q is not a CIDR", clusterCIDR)
	}
	_, bits := c.Mask.Size()
	return (&net.IPNet{IP: c.IP, Mask: net.CIDRMask(maskSize, bits)}).String(), nil
}

// reserved is what the shared node keeps for gantry and the host (--reserved-cpu,
// --reserved-memory).
func (c Config) reserved() (node.PodLimits, error) {
	r := node.DefaultReserved
	if c.ReservedCPU != "" {
		q, err := resource.ParseQuantity(c.ReservedCPU)
		if err != nil || q.Sign() < 0 {
			return r, fmt.Errorf("--reserved-cpu: %q is not a CPU quantity such as 250m or 1", c.ReservedCPU)
		}
		r.CPUMillis = q.MilliValue()
	}
	if c.ReservedMemory != "" {
		q, err := resource.ParseQuantity(c.ReservedMemory)
		if err != nil || q.Sign() < 0 {
			return r, fmt.Errorf("--reserved-memory: %q is not a memory quantity such as 768Mi or 1Gi", c.ReservedMemory)
		}
		r.MemoryBytes = q.Value()
	}
	return r, nil
}

// diskReserve is the free space the image store keeps on the data dir's filesystem: the
// node's reserve.
func diskReserve(cfg Config) int64 {
	switch {
	case cfg.DiskReserveBytes < 0:
		return 0
	case cfg.DiskReserveBytes == 0:
		return node.DefaultDiskReserveBytes
	}
	return cfg.DiskReserveBytes
}

// nodeIP is the address the Node advertises: the API server's advertise address, else the
// host's default interface, else loopback.
func nodeIP(advertise string) net.IP {
	if ip := net.ParseIP(advertise); ip != nil {
		return ip
	}
	if ip, err := utilnet.ChooseHostInterface(); err == nil {
		return ip
	}
	return net.IPv4(127, 0, 0, 1)
}

// newJoin is the join service: agents reach the API server at its bind address, or at the
// node's address when it binds every interface.
func newJoin(cfg Config, cp *controlplane.ControlPlane) (*join.Service, error) {
	host := cfg.ControlPlane.BindAddress
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = nodeIP(cfg.ControlPlane.AdvertiseAddress).String()
	}
	ca, err := os.ReadFile(cp.Certs().CACert())
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cp.GantryRESTConfig())
	if err != nil {
		return nil, err
	}
	opts := join.EnsureOptions{
		TokenFile: cp.DataDirJoin(datadir.JoinToken),
		Server:    "https://" + net.JoinHostPort(host, strconv.Itoa(cfg.ControlPlane.HTTPSPort)),
		CA:        ca,
	}
	// The agent's registry flags say where this server's registry is, when not the defaults.
	if cfg.RegistryAddr != image.DefaultRegistryAddr {
		opts.AgentFlags = append(opts.AgentFlags, "--registry-addr "+cfg.RegistryAddr)
	}
	if cfg.RegistryNodePort != image.DefaultNodeAccessPort {
		opts.AgentFlags = append(opts.AgentFlags, "--registry-node-port "+strconv.Itoa(cfg.RegistryNodePort))
	}
	if cfg.ControlPlane.Clustered() {
		opts.Clustered = true
		opts.ServerTokenFile = cp.DataDirJoin(datadir.ServerToken)
		opts.ServerBootstrap = func() (join.ServerBootstrap, error) {
			b, err := cp.Bootstrap()
			return join.ServerBootstrap{Files: b.Files, EtcdEndpoints: b.EtcdEndpoints}, err
		}
	}
	svc := join.NewService(client, opts, cfg.Logger)
	if cfg.ControlPlane.Clustered() {
		svc.Elect = func(ctx context.Context, run func(context.Context) error) error {
			return leaderelect.Run(ctx, cp.GantryRESTConfig(), "gantry-join-approver", run)
		}
	}
	return svc, nil
}

// joinSource is how this server joins another's cluster (--server, --token), or nil.
func (c Config) joinSource() (controlplane.JoinSource, error) {
	if c.JoinServer != "" && c.ControlPlane.ClusterInit {
		return nil, errors.New("--cluster-init and --server: give one (--cluster-init starts a cluster, --server joins one)")
	}
	if c.JoinServer == "" {
		if c.JoinToken != "" {
			return nil, errors.New("--token: needs --server, the server whose cluster to join")
		}
		return nil, nil
	}
	u, err := url.Parse(c.JoinServer)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("--server: %q is not an https:// URL of a server", c.JoinServer)
	}
	if c.JoinToken == "" {
		return nil, errors.New("--server: needs --token or --token-file, a server token (<data-dir>/server-token of a server started with --cluster-init)")
	}
	tok, err := join.ParseToken(c.JoinToken)
	if err != nil {
		return nil, fmt.Errorf("--token: %w", err)
	}
	return serverJoin{server: c.JoinServer, token: tok}, nil
}

// serverJoin fetches the cluster's bootstrap with a server token (internal/join).
type serverJoin struct {
	server string
	token  join.Token
}

func (j serverJoin) Fetch(ctx context.Context) (controlplane.Bootstrap, error) {
	b, err := join.FetchServerBootstrap(ctx, j.server, j.token)
	return controlplane.Bootstrap{Files: b.Files, EtcdEndpoints: b.EtcdEndpoints}, err
}

// newResourceMetrics builds the resource metrics API of the node's pods; it needs an address
// the API server can reach that is not loopback (the node's InternalIP), and is left out,
// with a warning, without one.
func (s *Server) newResourceMetrics(cfg Config) error {
	ip := nodeIP(cfg.ControlPlane.AdvertiseAddress)
	if ip.IsLoopback() {
		cfg.Logger.Warn("no resource metrics API (kubectl top, HPA): the node's address is loopback; set --advertise-address")
		return nil
	}
	certs := s.ControlPlane.Certs()
	var err error
	s.ResourceMetrics, err = resourcemetrics.New(resourcemetrics.Options{
		RESTConfig:   s.ControlPlane.GantryRESTConfig(),
		Source:       s.Sandboxes,
		NodeName:     cfg.NodeName,
		Address:      ip,
		CertFile:     certs.MetricsCert(),
		KeyFile:      certs.MetricsKey(),
		CAFile:       certs.CACert(),
		ClientCAFile: certs.FrontProxyCACert(),
		Logger:       cfg.Logger,
	})
	if err != nil {
		return err
	}
	s.group.Add("resource metrics", s.ResourceMetrics)
	return nil
}

// addBareDNS runs the pods' DNS server without the serving stack, in a controller-runtime
// manager of its own (--serving=false).
func (s *Server) addBareDNS(cfg Config) error {
	mgr, err := ctrl.NewManager(s.ControlPlane.GantryRESTConfig(), ctrl.Options{
		Scheme:                 serving.Scheme(),
		Cache:                  cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// One gantry server per data dir: no leader election.
		LeaderElection: false,
	})
	if err != nil {
		return fmt.Errorf("cluster DNS: %w", err)
	}
	s.group.Add("cluster DNS", &bareManager{mgr: mgr, setup: s.DNS, ready: make(chan struct{})})
	return nil
}

// bareManager runs one component in a manager of its own; it is ready once the manager's
// caches are synced.
type bareManager struct {
	mgr   manager.Manager
	setup serving.Component
	ready chan struct{}
}

func (b *bareManager) Ready() <-chan struct{} { return b.ready }

func (b *bareManager) Start(ctx context.Context) error {
	if err := b.setup.SetupWithManager(ctx, b.mgr); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- b.mgr.Start(ctx) }()
	go func() {
		if b.mgr.GetCache().WaitForCacheSync(ctx) {
			close(b.ready)
		}
	}()
	return <-done
}
