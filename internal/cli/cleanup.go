package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-run/gantry/internal/controlplane"
	"github.com/gantry-run/gantry/internal/controlplane/datadir"
	"github.com/gantry-run/gantry/internal/kubeproxy"
	"github.com/gantry-run/gantry/internal/overlay"
	"github.com/gantry-run/gantry/internal/podnet"
	"github.com/gantry-run/gantry/internal/sandbox"
)

func newCleanupCommand() *cobra.Command {
	dataDir := dataDirFromEnv(controlplane.DefaultDataDir)
	bridge, podCIDR := sandbox.DefaultBridge, sandbox.DefaultPodCIDR
	cmd := &cobra.Command{
		Use: "cleanup",
		Example: `  # After gantry server stopped: remove the sandboxes of its pods and its network rules.
  gantry cleanup
  gantry cleanup --data-dir /tmp/g2 --bridge gantry1 --pod-cidr 10.250.0.0/16`,
		Short: "Remove every sandbox a stopped gantry server left running",
		Long: `A stopped gantry server leaves its pods' sandboxes running, so the next start
re-adopts them. "gantry cleanup" stops and removes them all — containers,
network namespaces, addresses, cgroups, mounts — and the bridge's pod isolation
rules (nftables tables gantry-pods-<bridge>), the overlay's vxlan device
(flannel.<vni>, with --cluster-cidr) and kube-proxy's rules (nftables tables
kube-proxy) when this data dir's server or agent wrote them last and no other
runs kube-proxy, for a server or agent that is not running.
Objects in the API are not touched: a later start recreates the pods.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Minute)
			defer cancel()
			return cleanup(ctx, dataDir, sandbox.Options{Bridge: bridge, PodCIDR: podCIDR}, cmd)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", dataDir, "data directory of the stopped server (env GANTRY_DATA_DIR)")
	cmd.Flags().StringVar(&bridge, "bridge", bridge, "the stopped server's --bridge")
	cmd.Flags().StringVar(&podCIDR, "pod-cidr", podCIDR, "the stopped server's --pod-cidr")
	return cmd
}

func cleanup(ctx context.Context, dataDir string, net sandbox.Options, cmd *cobra.Command) error {
	// Holding the data dir's lock proves no server runs on it.
	dir, err := datadir.Open(dataDir)
	if err != nil {
		return err
	}
	defer dir.Close()
	// Each sandbox's network is removed as it was attached (libcni's cache), with or without
	// the bridge plugin's masquerade.
	m, err := sandbox.NewManager(ctx, sandbox.Options{Root: dir.Join(datadir.SandboxesDir), Bridge: net.Bridge, PodCIDR: net.PodCIDR,
		NoMasquerade: true})
	if err != nil {
		return err
	}
	removed, err := m.RemoveAll(ctx, 5*time.Second)
	for _, pod := range removed {
		fmt.Fprintf(cmd.OutOrStdout(), "removed sandbox of pod %s\n", pod)
	}
	if err != nil {
		return err
	}
	// The rules go with the last pod they kept apart.
	if err := podnet.RemoveRules(ctx, net.Bridge); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "removed the pod isolation rules of bridge %s\n", net.Bridge)
	// kube-proxy's rules, if this data dir's server or agent wrote them last and nothing
	// runs kube-proxy now: they would go on sending ClusterIPs to pods that are gone.
	said, err := kubeproxy.RemoveLeftovers(ctx, kubeproxy.LockPathForThisNetns(), dir.Path)
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), said)
	// The overlay's vxlan device, and with it the routes to other nodes' pods.
	device, err := overlay.RemoveDevice(dir.Join(datadir.OverlayDir))
	if err != nil {
		return err
	}
	if device != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "removed the overlay's device %s\n", device)
	}
	return nil
}
