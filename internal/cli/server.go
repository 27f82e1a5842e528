package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gantry-run/gantry/internal/dashboard"
	"github.com/gantry-run/gantry/internal/standalone"
	"github.com/gantry-run/gantry/internal/tracing"
)

// stopTimeout bounds a clean shutdown; a second signal ends the process at once.
const stopTimeout = 60 * time.Second

func newServerCommand() *cobra.Command {
	all := standalone.DefaultConfig()
	cfg := &all.ControlPlane
	cfg.DataDir = dataDirFromEnv(cfg.DataDir)
	var level logLevel
	logFormat := tracing.LogText
	var diskReserve quantityFlag
	var tokenFile string
	var schedPolicy *string
	cmd := &cobra.Command{
		Use: "server",
		Example: `  # Start with the embedded defaults (data in /var/lib/gantry, API on 127.0.0.1:6443,
  # Services at http://<name>.<namespace>.localhost:8080).
  gantry server

  # A second server on one machine: its own data dir, ports, bridge and pod range.
  gantry server --data-dir /tmp/g2 --https-port 7443 --etcd-client-port 3379 --etcd-peer-port 3380 \
    --webhook-port 7444 --registry-addr 127.0.0.1:6000 --registry-node-port 7445 --kubelet-port 11250 \
    --http-port 9080 --metrics-address 127.0.0.1:9096 --bridge gantry1 --pod-cidr 10.250.0.0/16

  # A highly available control plane (docs/ha.md): the first server starts the cluster...
  gantry server --cluster-init --advertise-address 10.0.0.1 --bind-address 0.0.0.0
  # ...and each other server joins it with the server token of the first.
  gantry server --server https://10.0.0.1:6443 --token-file server-token \
    --advertise-address 10.0.0.2 --bind-address 0.0.0.0`,
		Short: "Run the embedded Kubernetes control plane",
		Long: `Run Gantry: an embedded etcd, kube-apiserver, kube-controller-manager and
kube-scheduler, an image registry on loopback, and the Knative Serving API (CRDs,
admission webhook, controllers), all in this process. The admin kubeconfig is
written to <data-dir>/kubeconfig.yaml; "gantry kubectl" uses it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := tokenFromFile(cmd, tokenFile, &all.JoinToken); err != nil {
				return err
			}
			if err := refuseWithoutClusterCIDR(cmd, cfg.ClusterCIDR); err != nil {
				return err
			}
			if err := refuseAutoscalerPortAlone(cmd); err != nil {
				return err
			}
			if diskReserve.set {
				all.DiskReserveBytes = diskReserve.bytes
				if all.DiskReserveBytes == 0 {
					all.DiskReserveBytes = -1 // the option's "off"
				}
			}
			if !all.Serving && !cmd.Flags().Changed("dashboard") {
				all.Dashboard = false // the dashboard is part of the serving stack
			}
			log, err := tracing.NewLogger(os.Stderr, logFormat, level.Level)
			if err != nil {
				return fmt.Errorf("--log-format: %w", err)
			}
			if err := applySchedPolicy(cmd, *schedPolicy, log); err != nil {
				return err
			}
			// With node IPAM the server's node takes the cluster range's first block unless
			// --pod-cidr says otherwise.
			if cfg.ClusterCIDR != "" && !cmd.Flags().Changed("pod-cidr") {
				if all.PodCIDR, err = standalone.FirstNodeCIDR(cfg.ClusterCIDR, cfg.NodeCIDRMaskSize); err != nil {
					return err
				}
			}
			return runServer(cmd.Context(), all, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for etcd data, certificates and kubeconfigs (env GANTRY_DATA_DIR)")
	f.StringVar(&cfg.BindAddress, "bind-address", cfg.BindAddress, "IP address the API server listens on")
	f.IntVar(&cfg.HTTPSPort, "https-port", cfg.HTTPSPort, "port of the API server")
	f.StringVar(&cfg.AdvertiseAddress, "advertise-address", cfg.AdvertiseAddress, "IP address advertised as the API server's endpoint (default: the host's default interface)")
	f.IntVar(&cfg.EtcdClientPort, "etcd-client-port", cfg.EtcdClientPort, "etcd client port (loopback only)")
	f.IntVar(&cfg.EtcdPeerPort, "etcd-peer-port", cfg.EtcdPeerPort, "etcd peer port (loopback only)")
	f.StringVar(&cfg.ServiceCIDR, "service-cidr", cfg.ServiceCIDR, "range of Service cluster IPs")
	f.BoolVar(&cfg.WatchCache, "watch-cache", cfg.WatchCache, "keep the API server's watch cache, a decoded copy of every object and of its recent versions in memory; off, lists and watches are served from etcd, in the same process (less memory with many objects, a little more CPU per watch event)")
	f.StringVar(&cfg.ComponentLog, "component-log", cfg.ComponentLog, `file for the logs of etcd and the Kubernetes components (default <data-dir>/logs/components.log; "-" for stderr)`)
	f.IntVarP(&cfg.Verbosity, "v", "v", cfg.Verbosity, "log verbosity of the Kubernetes components")
	f.BoolVar(&all.Serving, "serving", all.Serving, "run Gantry's serving stack; --serving=false leaves a plain Kubernetes API and node, a cluster for \"gantry install\" (docs/cluster-mode.md)")
	f.StringVar(&all.Domain, "domain", all.Domain, "domain of Knative Routes: <route>.<namespace>.<domain>")
	f.StringVar(&all.HTTPAddress, "http-address", all.HTTPAddress, "IP address the gateway serves Routes on (0.0.0.0 serves the network)")
	f.IntVar(&all.HTTPPort, "http-port", all.HTTPPort, "port the gateway serves Routes on")
	f.IntVar(&all.ActivatorQueueDepth, "activator-queue-depth", all.ActivatorQueueDepth, "requests that may wait for one revision's pods in the activator; more get 503")
	f.BoolVar(&all.PassConnections, "pass-connections", all.PassConnections, "let the gateway pass kept-alive client connections to the queue-proxies of this machine's pods, which then serve their requests with one relay less (docs/serving.md)")
	f.IntVar(&all.WebhookPort, "webhook-port", all.WebhookPort, "port of the admission webhook (loopback only)")
	f.IntVar(&all.AutoscalerPort, "autoscaler-port", all.AutoscalerPort, "with --cluster-init or --server: port of the autoscaler's endpoint (HTTPS on --bind-address), where the other servers' activators reach the serving leader's autoscaler")
	f.StringVar(&all.RegistryAddr, "registry-addr", all.RegistryAddr, "address of the embedded image registry (loopback only, plain HTTP)")
	f.IntVar(&all.RegistryNodePort, "registry-node-port", all.RegistryNodePort, "port where agents read the embedded registry (HTTPS on --bind-address; a node's client certificate required, pulls only); 0 serves none")
	f.BoolVar(&all.Node, "node", all.Node, "run the serverless node (needs root, runc and the CNI plugins); without it pods stay Pending")
	f.StringVar(&all.NodeName, "node-name", all.NodeName, "name of the serverless node")
	f.IntVar(&all.KubeletPort, "kubelet-port", all.KubeletPort, "port of the node's kubelet API (kubectl logs, exec), on the node's InternalIP (--advertise-address, else the host's default interface)")
	f.StringVar(&all.PodCIDR, "pod-cidr", all.PodCIDR, "range of pod IP addresses on the pods' bridge")
	f.StringVar(&cfg.ClusterCIDR, "cluster-cidr", cfg.ClusterCIDR, "range of every node's pods: turns on node IPAM (each Node gets a spec.podCIDR from it; agents take theirs from it) and the vxlan overlay between nodes (default off: each node's --pod-cidr by hand)")
	f.IntVar(&cfg.NodeCIDRMaskSize, "node-cidr-mask-size", cfg.NodeCIDRMaskSize, "prefix length of each node's range in --cluster-cidr")
	f.IntVar(&all.VXLANVNI, "vxlan-vni", all.VXLANVNI, "the overlay's VXLAN network identifier, the same on every node (the device is flannel.<vni>)")
	f.IntVar(&all.VXLANPort, "vxlan-port", all.VXLANPort, "the overlay's UDP port, the same on every node")
	f.StringVar(&all.Bridge, "bridge", all.Bridge, "host bridge the pods join (a second server on one machine needs its own, and its own --pod-cidr)")
	f.StringVar(&all.PodEgressPrivate, "pod-egress-private", all.PodEgressPrivate, `whether pods reach the private ranges of the host's network (10/8, 172.16/12, 192.168/16: its LAN): "deny" or "allow"; the link-local range (cloud metadata) stays closed`)
	f.BoolVar(&all.AllowHostUsers, "allow-host-users", all.AllowHostUsers, "let pods that set spec.hostUsers: true run in the host's user namespace (refused by default: every pod gets its own)")
	f.Var(&diskReserve, "disk-reserve", `free space kept on the data dir's filesystem for etcd: below it image pulls are refused and pods evicted (default 2Gi; "0" turns it off)`)
	f.StringVar(&all.ReservedCPU, "reserved-cpu", all.ReservedCPU, "CPU of this machine kept for gantry itself and the host: the shared node's allocatable CPU is the machine's less this")
	f.StringVar(&all.ReservedMemory, "reserved-memory", all.ReservedMemory, "memory of this machine kept for gantry itself and the host: the shared node's allocatable memory is the machine's less this")
	f.BoolVar(&all.AllowUnconfinedSeccomp, "allow-unconfined-seccomp", all.AllowUnconfinedSeccomp, "let pods whose seccompProfile is Unconfined run without a seccomp filter (refused by default)")
	f.StringVar(&all.KubeProxy, "kube-proxy", all.KubeProxy, `run kube-proxy for ClusterIPs with the node: "auto" unless another gantry server on this host runs it (its rules are one per host), "on" (refuse to start otherwise), "off"`)
	f.DurationVar(&cfg.ReadyTimeout, "ready-timeout", cfg.ReadyTimeout, "how long to wait for the API server to become ready")
	f.StringVar(&all.MetricsAddress, "metrics-address", all.MetricsAddress, `where Prometheus metrics are served at /metrics ("" serves none)`)
	f.BoolVar(&all.Profiling, "profiling", all.Profiling, "also serve Go's profiles at /debug/pprof/ on --metrics-address")
	f.StringVar(&all.OTLPEndpoint, "otlp-endpoint", all.OTLPEndpoint, `OTLP/HTTP collector (e.g. http://127.0.0.1:4318) that receives the spans of the gateway, the activator and the queue-proxies ("" traces nothing)`)
	f.Float64Var(&all.OTLPSamplingRatio, "otlp-sampling-ratio", all.OTLPSamplingRatio, "share of new traces recorded, between 0 and 1 (a request that brings a sampled traceparent is always recorded)")
	f.BoolVar(&all.Dashboard, "dashboard", all.Dashboard, "serve the web dashboard at http://gantry.localhost:<http-port>/ (also localhost and the gateway's IP addresses)")
	f.StringVar(&all.DashboardAddress, "dashboard-address", all.DashboardAddress, "also serve the dashboard on this host:port of its own")
	f.StringVar(&all.DashboardTokenFile, "dashboard-token-file", all.DashboardTokenFile, "file whose first line is a token (16 characters or more) that opens the dashboard to clients beyond loopback (Authorization: Bearer TOKEN, or /?token=TOKEN once)")
	f.DurationVar(&all.EtcdSnapshotInterval, "etcd-snapshot-interval", all.EtcdSnapshotInterval, `time between two scheduled etcd snapshots, e.g. 12h or 30m ("0" takes none); the first is due one interval after the newest scheduled snapshot`)
	f.IntVar(&all.EtcdSnapshotRetention, "etcd-snapshot-retention", all.EtcdSnapshotRetention, "how many scheduled etcd snapshots are kept, the newest (snapshots taken with gantry etcd-snapshot save are not counted)")
	f.StringVar(&all.EtcdSnapshotDir, "etcd-snapshot-dir", all.EtcdSnapshotDir, "directory of the etcd snapshots (default <data-dir>/snapshots)")
	f.BoolVar(&cfg.ClusterInit, "cluster-init", cfg.ClusterInit, "start a cluster that more servers join (--server): etcd serves its peers at --advertise-address, and writes <data-dir>/server-token")
	f.StringVar(&all.JoinServer, "server", all.JoinServer, "join the cluster of the server at this URL (https://HOST:PORT) as one more server; needs --token or --token-file")
	f.StringVar(&all.JoinToken, "token", all.JoinToken, "the cluster's server token, K10<ca-hash>::<id>.<secret> (<data-dir>/server-token of a server; an agent token is refused)")
	f.StringVar(&tokenFile, "token-file", tokenFile, "file holding the server token")
	schedPolicy = schedPolicyFlag(f)
	f.Var(&level, "log-level", "level of gantry's own log: debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", logFormat, "format of gantry's own log: text or json (a line about a request carries its trace_id and span_id)")
	return cmd
}

func runServer(ctx context.Context, cfg standalone.Config, log *slog.Logger) error {
	cfg.Logger = log
	tuneGC()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	began := time.Now()
	srv, err := standalone.Start(ctx, cfg)
	if err != nil {
		return err
	}
	cp := srv.ControlPlane
	log.Info("API server ready",
		"url", cp.Server(),
		"kubeconfig", cp.KubeconfigPath(),
		"dataDir", cp.DataDir(),
		"registry", srv.Registry.Addr(),
		"gateway", gatewayAddrs(srv),
		"firstStart", cp.Fresh(),
		"elapsed", time.Since(began).Round(time.Millisecond))
	if srv.Dashboard != nil {
		url := "http://" + dashboard.Host + ":" + strconv.Itoa(cfg.HTTPPort) + "/"
		if addr := srv.Dashboard.Addr(); addr != "" {
			url = "http://" + addr + "/"
		}
		log.Info("dashboard", "url", url)
	}

	return runUntilDone(ctx, stop, srv, log)
}

// gatewayAddrs are the gateway's addresses; none with --serving=false.
func gatewayAddrs(srv *standalone.Server) []string {
	if srv.Gateway == nil {
		return nil
	}
	return srv.Gateway.Addrs()
}

// running is a started server or agent: its parts run until one fails or it is stopped.
type running interface {
	Failed() <-chan struct{}
	Err() error
	Stop(ctx context.Context) error
}

// runUntilDone waits for a signal (ctx) or a part's failure, then stops r within
// stopTimeout; stop releases the signals, so a second one ends the process at once.
func runUntilDone(ctx context.Context, stop func(), r running, log *slog.Logger) error {
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("stopping")
	case <-r.Failed():
		runErr = r.Err()
		log.Error("a component failed; stopping", "err", runErr)
	}
	stop() // a second signal now ends the process at once
	stopCtx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := r.Stop(stopCtx); err != nil {
		log.Error("unclean stop", "err", err)
		if runErr == nil {
			runErr = fmt.Errorf("stopping: %w", err)
		}
	}
	if runErr == nil {
		log.Info("stopped")
	}
	return runErr
}

// logLevel is a --log-level flag: slog's level names, case-insensitive.
type logLevel struct{ slog.Level }

func (l *logLevel) Set(s string) error {
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return fmt.Errorf("%q is not a log level: want debug, info, warn or error", s)
	}
	return nil
}

func (l *logLevel) Type() string { return "level" }

// quantityFlag is a flag of bytes written as a Kubernetes quantity (2Gi, 500M, 0).
type quantityFlag struct {
	bytes int64
	set   bool
}

func (q *quantityFlag) Set(s string) error {
	v, err := resource.ParseQuantity(s)
	if err != nil || v.Sign() < 0 {
		return fmt.Errorf("%q is not a size such as 2Gi or 500M", s)
	}
	q.bytes, q.set = v.Value(), true
	return nil
}

func (q *quantityFlag) String() string {
	if !q.set {
		return ""
	}
	return resource.NewQuantity(q.bytes, resource.BinarySI).String()
}

func (q *quantityFlag) Type() string { return "quantity" }
