// Package cli holds gantry's commands, one file per command group; cmd/gantry only calls Main.
package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/gantry-run/gantry/internal/version"
)

// Main runs the command named by args and returns the process exit code. Invoked as
// "kubectl" (a symlink to the binary), it is kubectl, as k3s does.
func Main(args []string) int {
	if filepath.Base(args[0]) == "kubectl" {
		runKubectl(args[1:])
		return 0
	}
	root := NewRootCommand()
	root.SetArgs(args[1:])
	if err := root.Execute(); err != nil {
		fmt.Fprintf(os.Stderr, "gantry: %v\n", err)
		return 1
	}
	return 0
}

// NewRootCommand is the gantry command tree.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use: "gantry",
		Example: `  gantry server                      # start Gantry
  gantry deploy samples/hello        # build a Go program and run it as a Knative Service
  gantry service list                # the Services and their URLs
  gantry kubectl get ksvc,kpa        # the same objects through kubectl`,
		Short: "Serverless Kubernetes in one binary",
		Long: `Gantry runs the Knative Serving API on an embedded Kubernetes control plane,
with every pod in its own isolated sandbox.

Start it with "gantry server"; talk to it with "gantry kubectl".`,
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServerCommand(), newAgentCommand(), newKubectlCommand(), newQueueProxyCommand(), newImageCommand(), newCleanupCommand(), newUsageCommand(), newEtcdSnapshotCommand(), newControllerCommand(), newInstallCommand(), newUninstallCommand())
	root.AddCommand(knCommands()...)
	return root
}

// dataDirFromEnv is the data directory named by GANTRY_DATA_DIR, or def.
func dataDirFromEnv(def string) string {
	if d := os.Getenv("GANTRY_DATA_DIR"); d != "" {
		return d
	}
	return def
}
