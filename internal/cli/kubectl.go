package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	_ "k8s.io/client-go/plugin/pkg/client/auth" // auth plugins a user's kubeconfig may name
	"k8s.io/client-go/tools/clientcmd"
	componentcli "k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/plugin"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/gantry-run/gantry/internal/apiservers"
	"github.com/gantry-run/gantry/internal/controlplane"
	"github.com/gantry-run/gantry/internal/controlplane/datadir"
	"github.com/gantry-run/gantry/internal/loadbalancer"
)

func newKubectlCommand() *cobra.Command {
	return &cobra.Command{
		Use: "kubectl [kubectl arguments]",
		Example: `  gantry kubectl get nodes
  gantry kubectl get ksvc,kpa -A
  gantry kubectl apply -f service.yaml`,
		Short: "Run kubectl against this machine's gantry server",
		Long: `The real kubectl, built in. Without KUBECONFIG or --kubeconfig it uses
<data-dir>/kubeconfig.yaml (data dir: GANTRY_DATA_DIR, default /var/lib/gantry).
On a server of a cluster whose own API server is down, it goes to the cluster's other
servers, those the server last listed in <data-dir>/api-servers.`,
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
		dataDir := dataDirFromEnv(controlplane.DefaultDataDir)
		path := filepath.Join(dataDir, datadir.AdminKubeconfig)
		if _, err := os.Stat(path); err != nil {
			fmt.Fprintf(os.Stderr, "gantry kubectl: no kubeconfig at %s (is gantry server running there? set GANTRY_DATA_DIR or KUBECONFIG)\n", path)
		} else {
			args = failover(context.Background(), dataDir, args, os.Stderr)
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

// checkTimeout bounds the check that a server's own API server takes connections.
const checkTimeout = time.Second

// failover returns kubectl's arguments for a server's own kubeconfig in dataDir. While its API
// server takes TCP connections, they are args as they are. When it does not (the server is
// down) and the server is one of a cluster, which keeps the API servers it last saw in
// <data-dir>/api-servers, kubectl goes through a load balancer in this process (the agents'),
// which tries the kubeconfig's server, then those of them that take connections now (if
// none does, args are left alone): --server names the load balancer. The
// kubeconfig's credentials work on every server of the cluster, and every server's
// certificate covers 127.0.0.1, where the load balancer listens. A --server, --context or
// --cluster of the user's is kept, with no load balancer.
func failover(ctx context.Context, dataDir string, args []string, stderr io.Writer) []string {
	if hasFlag(args, "--server", "-s", "--context", "--cluster") {
		return args
	}
	cfg, err := clientcmd.LoadFromFile(filepath.Join(dataDir, datadir.AdminKubeconfig))
	if err != nil {
		return args // kubectl says what is wrong with it
	}
	kctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return args
	}
	cluster, ok := cfg.Clusters[kctx.Cluster]
	if !ok {
		return args
	}
	own, err := url.Parse(cluster.Server)
	if err != nil || own.Scheme != "https" || own.Port() == "" {
		return args
	}
	d := net.Dialer{Timeout: checkTimeout}
	conn, err := d.DialContext(ctx, "tcp", own.Host)
	if err == nil {
		_ = conn.Close()
		return args
	}
	others, err := apiservers.ReadFile(filepath.Join(dataDir, apiservers.FileName))
	if err != nil || len(others) == 0 {
		return args
	}
	// Only when another server takes connections: else kubectl fails at once, as it would
	// without this, rather than retrying through a load balancer with nowhere to go.
	urls := []string{cluster.Server}
	for _, o := range others {
		if o == own.Host {
			continue
		}
		if conn, err := d.DialContext(ctx, "tcp", o); err == nil {
			_ = conn.Close()
			urls = append(urls, "https://"+o)
		}
	}
	if len(urls) == 1 {
		return args
	}
	lb, err := loadbalancer.New(urls, nil)
	if err != nil {
		return args
	}
	go func() { _ = lb.Start(ctx) }() // until the process ends
	fmt.Fprintf(stderr, "gantry kubectl: %s does not answer; trying the cluster's other servers (%s, from %s)\n",
		cluster.Server, strings.Join(urls[1:], ", "), filepath.Join(dataDir, apiservers.FileName))
	return append([]string{"--server=" + lb.URL()}, args...)
}

// hasFlag reports whether args, before any "--", hold one of names (as --name, --name=value,
// or -s / -s=value).
func hasFlag(args []string, names ...string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		for _, n := range names {
			if a == n || strings.HasPrefix(a, n+"=") {
				return true
			}
		}
	}
	return false
}
