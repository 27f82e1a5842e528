package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	_ "k8s.io/client-go/plugin/pkg/client/auth" // auth plugins a user's kubeconfig may name
	componentcli "k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/plugin"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/gantry-run/gantry/internal/controlplane"
	"github.com/gantry-run/gantry/internal/controlplane/datadir"
)

func newKubectlCommand() *cobra.Command {
	return &cobra.Command{
		Use: "kubectl [kubectl arguments]",
		Example: `  gantry kubectl get nodes
  gantry kubectl get ksvc,kpa -A
  gantry kubectl apply -f service.yaml`,
		Short: "Run kubectl against this machine's gantry server",
		Long: `The real kubectl, built in. Without KUBECONFIG or --kubeconfig it uses
<data-dir>/kubeconfig.yaml (data dir: GANTRY_DATA_DIR, default /var/lib/gantry).`,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			runKubectl(args)
			return nil
		},
	}
}

// runKubectl runs kubectl with args. It returns when kubectl succeeds; on failure kubectl
// prints its own message and the process exits with kubectl's exit code.
func runKubectl(args []string) {
	if os.Getenv("KUBECONFIG") == "" && !hasKubeconfigFlag(args) {
		path := filepath.Join(dataDirFromEnv(controlplane.DefaultDataDir), datadir.AdminKubeconfig)
		if _, err := os.Stat(path); err != nil {
			fmt.Fprintf(os.Stderr, "gantry kubectl: no kubeconfig at %s (is gantry server running there? set GANTRY_DATA_DIR or KUBECONFIG)\n", path)
		}
		_ = os.Setenv("KUBECONFIG", path)
	}
	argv := append([]string{"kubectl"}, args...)
	_, _ = logs.GlogSetter(kubectlcmd.GetLogVerbosity(argv))
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	cmd := kubectlcmd.NewDefaultKubectlCommandWithArgs(kubectlcmd.KubectlOptions{
		PluginHandler: kubectlcmd.NewDefaultPluginHandler(plugin.ValidPluginFilenamePrefixes),
		Arguments:     argv,
		ConfigFlags:   genericclioptions.NewConfigFlags(true).WithDeprecatedPasswordFlag().WithDiscoveryBurst(300).WithDiscoveryQPS(50.0).WithWarningPrinter(streams),
		IOStreams:     streams,
	})
	cmd.SetArgs(args)
	if err := componentcli.RunNoErrOutput(cmd); err != nil {
		// CheckErr prints kubectl's own message and exits with kubectl's code.
		cmdutil.CheckErr(err)
	}
}

func hasKubeconfigFlag(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "--kubeconfig" || strings.HasPrefix(a, "--kubeconfig=") {
			return true
		}
	}
	return false
}
