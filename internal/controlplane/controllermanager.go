package controlplane

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	cmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	cmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"

	"github.com/gantry-run/gantry/internal/controlplane/pki"
)

// controllerManagerArgs are the kube-controller-manager flags. Its own leader election is off:
// a single server runs one, and the servers of a cluster elect one with leaderelect.Run. Node IPAM gives each Node its spec.podCIDR from cfg.ClusterCIDR when that
// is set (several nodes, joined by the overlay); without it the controller is off and each
// node's range is given by hand.
func controllerManagerArgs(kubeconfig string, certs pki.Bundle, cfg Config) []string {
	controllers := "--controllers=*,bootstrap-signer-controller,token-cleaner-controller,-node-ipam-controller"
	var ipam []string
	if cfg.ClusterCIDR != "" {
		controllers = "--controllers=*,bootstrap-signer-controller,token-cleaner-controller"
		ipam = []string{"--allocate-node-cidrs=true", "--cluster-cidr=" + cfg.ClusterCIDR,
			fmt.Sprintf("--node-cidr-mask-size=%d", cfg.NodeCIDRMaskSize),
			// The overlay routes between nodes; there is no cloud to program routes in.
			"--configure-cloud-routes=false"}
	}
	return append([]string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		// The bootstrap signer signs cluster-info with the join token, for agents to trust the
		// server; the token cleaner removes expired bootstrap tokens.
		controllers,
		// Each controller acts as its own service account, with the bootstrap RBAC roles.
		"--use-service-account-credentials=true",
		"--secure-port=0",
		"--service-account-private-key-file=" + certs.ServiceAccountKey(),
		"--root-ca-file=" + certs.CACert(),
		"--cluster-signing-cert-file=" + certs.CACert(),
		"--cluster-signing-key-file=" + certs.CAKey(),
		"--cluster-name=gantry",
	}, ipam...)
}

// runControllerManager parses args into kube-controller-manager's options and runs it until
// ctx ends.
func runControllerManager(ctx context.Context, args []string) error {
	s, err := cmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return fmt.Errorf("kube-controller-manager options: %w", err)
	}
	named := s.Flags(cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases())
	s.ParsedFlags = &named
	fs := pflag.NewFlagSet("kube-controller-manager", pflag.ContinueOnError)
	for _, f := range named.FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("kube-controller-manager flags: %w", err)
	}
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("kube-controller-manager feature gates: %w", err)
	}
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	c, err := s.Config(ctx, cmapp.KnownControllers(), cmapp.ControllersDisabledByDefault(), cmapp.ControllerAliases())
	if err != nil {
		return fmt.Errorf("kube-controller-manager config: %w", err)
	}
	return cmapp.Run(ctx, c.Complete())
}
