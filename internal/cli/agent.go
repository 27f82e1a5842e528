package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	utilnet "k8s.io/apimachinery/pkg/util/net"

	"github.com/gantry-run/gantry/internal/agent"
	"github.com/gantry-run/gantry/internal/controlplane"
	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/overlay"
	"github.com/gantry-run/gantry/internal/tracing"
)

func newAgentCommand() *cobra.Command {
	host, _ := os.Hostname()
	cfg := agent.Config{
		NodeName: strings.ToLower(host), DataDir: agent.DefaultDataDir, Bridge: agent.DefaultBridge,
		PodCIDR: agent.DefaultPodCIDR, ServiceCIDR: agent.DefaultServiceCIDR, KubeletPort: agent.DefaultKubeletPort,
		APIServerPort: controlplane.DefaultHTTPSPort,
		VXLANVNI:      overlay.DefaultVNI, VXLANPort: overlay.DefaultPort, KubeProxy: "auto",
		RegistryAddr: image.DefaultRegistryAddr, RegistryNodePort: image.DefaultNodeAccessPort,
	}
	var tokenFile string
	var level logLevel
	logFormat := tracing.LogText
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Join a gantry server's cluster as a node that runs pods",
		Long: `Join the cluster of a gantry server as a node: this machine runs pods in runc
sandboxes, and nothing of the control plane. The server prints the command at its
start; its join token is in <server data dir>/token. The agent trusts the server only
once its CA is the one the token pins, asks for its node's certificates with the
token, and keeps them in <data-dir>/credentials.`,
		Example: `  gantry agent --server https://10.0.0.1:6443 --token-file token --node-name worker-1`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := tokenFromFile(cmd, tokenFile, &cfg.Token); err != nil {
				return err
			}
			if err := refuseWithoutClusterCIDR(cmd, cfg.ClusterCIDR); err != nil {
				return err
			}
			log, err := tracing.NewLogger(os.Stderr, logFormat, level.Level)
			if err != nil {
				return fmt.Errorf("--log-format: %w", err)
			}
			cfg.Logger = log
			// With node IPAM the range is the Node's; --pod-cidr only when given.
			if cfg.ClusterCIDR != "" && !cmd.Flags().Changed("pod-cidr") {
				cfg.PodCIDR = ""
			}
			return runAgent(cmd.Context(), cfg, log)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Server, "server", cfg.Server, "URL of the gantry server's API (https://HOST:PORT); for a cluster of servers, one or more of their URLs comma-separated: the agent fails over between them and the servers the cluster lists")
	f.StringVar(&cfg.Token, "token", cfg.Token, "the server's join token, K10<ca-hash>::<id>.<secret> (env GANTRY_TOKEN)")
	f.StringVar(&tokenFile, "token-file", tokenFile, "file holding the join token (the server's <data-dir>/token)")
	f.StringVar(&cfg.NodeName, "node-name", cfg.NodeName, "name of this node (default: the host name)")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the credentials, images, sandboxes and pod state")
	f.StringVar(&cfg.Bridge, "bridge", cfg.Bridge, "host bridge this machine's pods join")
	f.StringVar(&cfg.PodCIDR, "pod-cidr", cfg.PodCIDR, "range of this machine's pod addresses: one of its own, apart from every other node's (with --cluster-cidr: leave it out, or give the range node IPAM gave this node)")
	f.StringVar(&cfg.ClusterCIDR, "cluster-cidr", cfg.ClusterCIDR, "the server's --cluster-cidr: this node's pod range is then its Node's spec.podCIDR (node IPAM) and the vxlan overlay joins it to the other nodes'")
	f.StringVar(&cfg.KubeProxy, "kube-proxy", cfg.KubeProxy, `with --cluster-cidr, run kube-proxy for ClusterIPs: "auto" unless another kube-proxy owns this network namespace's rules, "on" (refuse to start otherwise), "off"`)
	f.IntVar(&cfg.VXLANVNI, "vxlan-vni", cfg.VXLANVNI, "the overlay's VXLAN network identifier (the server's --vxlan-vni; the device is flannel.<vni>)")
	f.IntVar(&cfg.VXLANPort, "vxlan-port", cfg.VXLANPort, "the overlay's UDP port (the server's --vxlan-port)")
	f.StringVar(&cfg.ServiceCIDR, "service-cidr", cfg.ServiceCIDR, "the cluster's Service range (the server's --service-cidr)")
	f.StringVar(&cfg.Address, "address", cfg.Address, "the node's address, where the API server reaches its kubelet API (default: the host's default interface)")
	f.IntVar(&cfg.KubeletPort, "kubelet-port", cfg.KubeletPort, "port of the node's kubelet API")
	f.IntVar(&cfg.APIServerPort, "apiserver-port", cfg.APIServerPort, "port pods reach the API server on (the server's --https-port)")
	f.StringVar(&cfg.RegistryAddr, "registry-addr", cfg.RegistryAddr, "the server's --registry-addr: images that pods name with it are pulled from the servers (--registry-node-port), then from this address on this machine")
	f.IntVar(&cfg.RegistryNodePort, "registry-node-port", cfg.RegistryNodePort, "the servers' --registry-node-port, where this node reads their embedded registry with its client certificate; 0 pulls from --registry-addr on this machine only")
	f.Var(&level, "log-level", "level of the agent's log: debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", logFormat, "format of the agent's log: text or json")
	if v := os.Getenv("GANTRY_TOKEN"); v != "" {
		cfg.Token = v
	}
	return cmd
}

func runAgent(ctx context.Context, cfg agent.Config, log *slog.Logger) error {
	tuneGC()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	address := net.ParseIP(cfg.Address)
	if address == nil {
		ip, err := utilnet.ChooseHostInterface()
		if err != nil {
			return fmt.Errorf("--address: none given and no default interface: %w", err)
		}
		address = ip
	}
	a, err := agent.Start(ctx, cfg, address)
	if err != nil {
		return err
	}
	log.Info("node ready", "node", cfg.NodeName, "server", cfg.Server, "address", address.String())
	return runUntilDone(ctx, stop, a, log)
}
