package cli

import (
	"fmt"

	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gantry-run/gantry/internal/activator"
	"github.com/gantry-run/gantry/internal/cluster"
	"github.com/gantry-run/gantry/internal/serving"
	"github.com/gantry-run/gantry/internal/tracing"
	"github.com/gantry-run/gantry/pkg/apis/config"
)

func newControllerCommand() *cobra.Command {
	opts := cluster.Options{
		Namespace:           config.Namespace,
		LeaderElection:      true,
		WebhookPort:         cluster.DefaultWebhookPort,
		HTTPPort:            cluster.DefaultHTTPPort,
		HealthPort:          cluster.DefaultHealthPort,
		Domain:              serving.DefaultDomain,
		ActivatorQueueDepth: activator.DefaultQueueDepth,
	}
	var kubeconfig, gatewayRef, localGatewayRef string
	var level logLevel
	var schedPolicy *string
	cmd := &cobra.Command{
		Use: "controller",
		Example: `  # Run by the gantry-controller Deployment that "gantry install" writes; by hand, against
  # any cluster where "gantry install" put the CRDs and webhook configurations:
  gantry controller --kubeconfig ~/.kube/config --cert-dir ./certs --queue-proxy-image REGISTRY/gantry@sha256:...`,
		Short: "Run the serving stack (controllers, webhook, autoscaler, activator, gateway) against a cluster",
		Long: `Run Gantry's serving stack out of process against a cluster: the Knative Serving
controllers, the admission webhook, the autoscaler, the activator and the gateway. It acts
through --kubeconfig, else $KUBECONFIG, else the pod's in-cluster service account. With
leader election (the default) one replica runs the controllers, autoscaler and gateway and is
the only one ready; every replica serves the webhook.`,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := tracing.NewLogger(os.Stderr, tracing.LogJSON, level.Level)
			if err != nil {
				return err
			}
			if err := applySchedPolicy(cmd, *schedPolicy, log); err != nil {
				return err
			}
			if opts.Gateways.External, err = parseNamespacedName("--gateway-api-gateway", gatewayRef); err != nil {
				return err
			}
			if opts.Gateways.Local, err = parseNamespacedName("--gateway-api-local-gateway", localGatewayRef); err != nil {
				return err
			}
			cfg, err := clusterConfig(kubeconfig)
			if err != nil {
				return err
			}
			opts.RESTConfig, opts.Logger = cfg, log
			stack, err := cluster.New(opts)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			log.Info("serving stack starting", "apiServer", cfg.Host, "leaderElection", opts.LeaderElection)
			return stack.Start(ctx)
		},
	}
	f := cmd.Flags()
	schedPolicy = schedPolicyFlag(f)
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, else the in-cluster service account)")
	f.StringVar(&opts.Namespace, "namespace", opts.Namespace, "namespace of the leader-election Lease")
	f.BoolVar(&opts.LeaderElection, "leader-elect", opts.LeaderElection, "elect one active replica (the others serve only the webhook)")
	f.IntVar(&opts.WebhookPort, "webhook-port", opts.WebhookPort, "port of the admission webhook (HTTPS)")
	f.StringVar(&opts.CertDir, "cert-dir", "", "directory of the webhook's serving certificate, tls.crt and tls.key")
	f.IntVar(&opts.HTTPPort, "http-port", opts.HTTPPort, "port of the gateway")
	f.IntVar(&opts.HealthPort, "health-port", opts.HealthPort, "port of /healthz and /readyz")
	f.IntVar(&opts.ActivatorPort, "activator-port", 0, fmt.Sprintf("with --ingress gateway-api: the activator's port, where requests name their revision by the Knative-Serving-Namespace/-Revision headers (default %d)", cluster.DefaultActivatorPort))
	f.StringVar(&opts.Domain, "domain", opts.Domain, "suffix of the Routes' hosts")
	f.StringVar(&opts.QueueProxyImage, "queue-proxy-image", "", "image of the revisions' queue-proxy container (the gantry image)")
	f.IntVar(&opts.ActivatorQueueDepth, "activator-queue-depth", opts.ActivatorQueueDepth, "requests that may wait for one revision's pods; more get 503")
	f.StringVar(&opts.Ingress, "ingress", cluster.IngressGateway, `"gateway" (the gateway serves Routes) or "gateway-api" (also write Gateway API HTTPRoutes for every Knative Ingress)`)
	f.StringVar(&gatewayRef, "gateway-api-gateway", "", "with --ingress gateway-api: the Gateway (namespace/name) the HTTPRoutes of public hosts attach to")
	f.StringVar(&localGatewayRef, "gateway-api-local-gateway", "", "with --ingress gateway-api: the Gateway (namespace/name) of cluster-local hosts (default --gateway-api-gateway)")
	f.Var(&level, "log-level", "log level: debug, info, warn or error")
	return cmd
}

// parseNamespacedName reads namespace/name; empty is the zero value.
func parseNamespacedName(flag, s string) (types.NamespacedName, error) {
	if s == "" {
		return types.NamespacedName{}, nil
	}
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return types.NamespacedName{}, fmt.Errorf("%s: %q is not namespace/name", flag, s)
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

// clusterConfig is the identity of a command that runs against any cluster: --kubeconfig,
// else $KUBECONFIG, else the pod's service account.
func clusterConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" && os.Getenv(clientcmd.RecommendedConfigPathEnvVar) == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig: none given, $KUBECONFIG unset, and not in a pod: %w", err)
		}
		return cfg, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	return cfg, nil
}
