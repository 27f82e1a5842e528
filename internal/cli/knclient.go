package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/controlplane"
	"github.com/gantry-run/gantry/internal/controlplane/datadir"
	"github.com/gantry-run/gantry/internal/serving"
)

// ErrServerNotRunning is returned when the CLI finds no API server to talk to.
var ErrServerNotRunning = errors.New("gantry server is not running")

// connFlags are the flags every command that talks to the API server has: where it is and
// which namespace to use. Without --kubeconfig or KUBECONFIG, the CLI uses the local
// server's admin kubeconfig, as gantry kubectl does.
type connFlags struct {
	kubeconfig string
	namespace  string
}

func (f *connFlags) addFlags(cmd *cobra.Command) {
	fs := cmd.PersistentFlags()
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, else <data-dir>/kubeconfig.yaml of the local gantry server; data dir: $GANTRY_DATA_DIR or /var/lib/gantry)")
	fs.StringVarP(&f.namespace, "namespace", "n", "", "namespace (default: the kubeconfig's, else default)")
}

// knClient talks to the API server for the Knative commands.
type knClient struct {
	client.Client
	kube      kubernetes.Interface
	namespace string
	host      string // the API server's URL, for error messages
}

// connect loads the kubeconfig and makes the clients. It does not call the server.
func (f *connFlags) connect() (*knClient, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	switch {
	case f.kubeconfig != "":
		rules.ExplicitPath = f.kubeconfig
	case os.Getenv(clientcmd.RecommendedConfigPathEnvVar) == "":
		path := filepath.Join(dataDirFromEnv(controlplane.DefaultDataDir), datadir.AdminKubeconfig)
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("%w here: no kubeconfig at %s (start gantry server, or set GANTRY_DATA_DIR, KUBECONFIG or --kubeconfig)", ErrServerNotRunning, path)
		}
		rules.ExplicitPath = path
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	ns := f.namespace
	if ns == "" {
		if ns, _, err = cc.Namespace(); err != nil {
			return nil, fmt.Errorf("loading the kubeconfig: %w", err)
		}
	}
	return newKnClient(cfg, ns)
}

func newKnClient(cfg *rest.Config, namespace string) (*knClient, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 50, 100
	c, err := client.New(cfg, client.Options{Scheme: serving.Scheme()})
	if err != nil {
		return nil, apiError(err, cfg.Host)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("making the Kubernetes client: %w", err)
	}
	return &knClient{Client: c, kube: kube, namespace: namespace, host: cfg.Host}, nil
}

// apiError turns a failure to reach the API server into one line that says so.
func apiError(err error, host string) error {
	if err == nil {
		return nil
	}
	var opErr *net.OpError
	var urlErr *url.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused"):
		return fmt.Errorf("%w: nothing answers at %s (start it with gantry server)", ErrServerNotRunning, host)
	case errors.As(err, &opErr), errors.As(err, &urlErr) && !apierrors.IsNotFound(err):
		return fmt.Errorf("cannot reach the API server at %s: %w", host, err)
	}
	return err
}

// check maps an API error of kind on name to one line: NotFound names what was not found.
func (k *knClient) check(err error, kind, name string) error {
	if err == nil {
		return nil
	}
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %q not found in namespace %q", kind, name, k.namespace)
	}
	return apiError(err, k.host)
}

// ctxOf is the command's context, or Background when it has none (tests).
func ctxOf(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// now is the time ages are counted to.
var now = time.Now

// asStatus reports whether err carries an API status (a refusal of the server).
func asStatus(err error, target *apierrors.APIStatus) bool {
	return errors.As(err, target)
}

// withClient is a RunE that checks -o (when the command has it) and connects before run, so
// a bad flag is reported before the server is looked for.
func withClient(conn *connFlags, out *outputFlags, run func(cmd *cobra.Command, args []string, k *knClient) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if out != nil {
			if err := out.validate(); err != nil {
				return err
			}
		}
		k, err := conn.connect()
		if err != nil {
			return err
		}
		return run(cmd, args, k)
	}
}
