package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// tokenFromFile puts the first line of --token-file into *token when the file is given; both
// --token and --token-file are refused together. gantry server and gantry agent share it.
func tokenFromFile(cmd *cobra.Command, file string, token *string) error {
	if file == "" {
		return nil
	}
	if cmd.Flags().Changed("token") {
		return errors.New("--token and --token-file: give one")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("--token-file: %w", err)
	}
	*token = strings.TrimSpace(string(b))
	return nil
}

// overlayFlags are the flags that only act with --cluster-cidr (node IPAM and the overlay).
var overlayFlags = []string{"node-cidr-mask-size", "vxlan-vni", "vxlan-port"}

// refuseWithoutClusterCIDR refuses an overlay flag given without --cluster-cidr, which would
// otherwise be accepted and do nothing.
func refuseWithoutClusterCIDR(cmd *cobra.Command, clusterCIDR string) error {
	if clusterCIDR != "" {
		return nil
	}
	for _, name := range overlayFlags {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
			return fmt.Errorf("--%s: acts only with --cluster-cidr (node IPAM and the overlay), which is not given", name)
		}
	}
	return nil
}

// refuseAutoscalerPortAlone refuses --autoscaler-port on a single server, which has no
// autoscaler endpoint for it to move.
func refuseAutoscalerPortAlone(cmd *cobra.Command) error {
	f := cmd.Flags()
	if !f.Changed("autoscaler-port") {
		return nil
	}
	init, _ := f.GetBool("cluster-init")
	server, _ := f.GetString("server")
	if init || server != "" {
		return nil
	}
	return errors.New("--autoscaler-port: only a server of a cluster (--cluster-init or --server) has the autoscaler's endpoint")
}
