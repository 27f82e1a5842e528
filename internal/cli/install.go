package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/gantry-run/gantry/internal/install"
	"github.com/gantry-run/gantry/internal/serving"
	"github.com/gantry-run/gantry/internal/tracing"
)

// quietControllerRuntime gives controller-runtime's clients a logger (they warn, with a
// stack, when there is none); install and uninstall say what they do themselves.
func quietControllerRuntime() { ctrllog.SetLogger(logr.Discard()) }

func newInstallCommand() *cobra.Command {
	o := install.Options{
		Replicas:           1,
		Domain:             serving.DefaultDomain,
		Ingress:            install.IngressGateway,
		GatewayServiceType: corev1.ServiceTypeClusterIP,
	}
	var kubeconfig, output, serviceType string
	var dryRun bool
	timeout := 5 * time.Minute
	cmd := &cobra.Command{
		Use: "install",
		Example: `  # Print the manifests
  gantry install --image REGISTRY/gantry@sha256:... --dry-run -o yaml

  # Install onto the cluster of a kubeconfig and wait until the stack is ready
  gantry install --kubeconfig ~/.kube/config --image REGISTRY/gantry@sha256:... --domain example.com`,
		Short: "Install Gantry's serving stack onto an existing Kubernetes cluster",
		Long: `Install Gantry's serving stack onto an existing Kubernetes cluster (cluster mode): the
Knative Serving CRDs, the gantry-system namespace with its ConfigMaps, RBAC, the
gantry-controller Deployment (controllers, admission webhook, autoscaler, activator and
gateway, from --image) behind the gantry-webhook and gantry-gateway Services, and the
webhook configurations with a certificate made here. Objects are written with server-side
apply; running it again updates them. "gantry uninstall" removes them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.GatewayServiceType = corev1.ServiceType(serviceType)
			if dryRun {
				if output != "yaml" {
					return fmt.Errorf("-o: %q is not supported; yaml is", output)
				}
				if o.Certs.Cert == nil {
					certs, err := install.GenerateCerts(install.Namespace, time.Now())
					if err != nil {
						return err
					}
					o.Certs = certs
				}
				objs, err := install.Manifests(o)
				if err != nil {
					return err
				}
				b, err := install.YAML(objs)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			if cmd.Flags().Changed("output") {
				return errors.New("-o: only with --dry-run (the manifests are printed, not applied)")
			}
			if err := o.Validate(); err != nil {
				return err
			}
			quietControllerRuntime()
			cfg, err := clusterConfig(kubeconfig)
			if err != nil {
				return err
			}
			log, err := tracing.NewLogger(os.Stderr, tracing.LogText, slog.LevelInfo)
			if err != nil {
				return err
			}
			if err := install.Install(cmd.Context(), cfg, o, timeout, log); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Gantry is installed on %s: Routes are served by Service %s/%s\n", cfg.Host, install.Namespace, install.GatewayServiceName)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default $KUBECONFIG, else the in-cluster service account)")
	f.StringVar(&o.Image, "image", "", "the gantry image the cluster's nodes pull (gantry image wrap \"$(command -v gantry)\" REF --user 65532); it runs the controller, and every queue-proxy without --queue-proxy-image")
	f.StringVar(&o.QueueProxyImage, "queue-proxy-image", "", "the image of every revision's queue-proxy (gantry image queue-proxy REF), quicker to start than the gantry image (default --image)")
	f.Int32Var(&o.Replicas, "replicas", o.Replicas, "replicas of gantry-controller (one leads and serves; the others serve the webhook and wait)")
	f.StringVar(&o.Domain, "domain", o.Domain, "domain of Knative Routes: <route>.<namespace>.<domain>")
	f.StringVar(&o.Ingress, "ingress", o.Ingress, `how Routes are reached: "gateway" (Gantry's gateway behind Service gantry-system/gantry-gateway) or "gateway-api" (also Gateway API HTTPRoutes for the cluster's Gateway API implementation)`)
	f.StringVar(&o.GatewayAPIGateway, "gateway-api-gateway", "", "with --ingress gateway-api: the Gateway (namespace/name) the HTTPRoutes of public hosts attach to")
	f.StringVar(&o.GatewayAPILocalGateway, "gateway-api-local-gateway", "", "with --ingress gateway-api: the Gateway (namespace/name) of cluster-local hosts (default --gateway-api-gateway)")
	f.StringVar(&serviceType, "gateway-service-type", string(o.GatewayServiceType), "type of the gantry-gateway Service: ClusterIP, NodePort or LoadBalancer")
	f.BoolVar(&dryRun, "dry-run", false, "print the manifests instead of applying them (with -o yaml)")
	f.StringVarP(&output, "output", "o", "yaml", "format of --dry-run: yaml")
	f.DurationVar(&timeout, "timeout", timeout, "how long to wait for the stack to be ready")
	return cmd
}

func newUninstallCommand() *cobra.Command {
	var kubeconfig string
	timeout := 5 * time.Minute
	cmd := &cobra.Command{
		Use:     "uninstall",
		Example: `  gantry uninstall --kubeconfig ~/.kube/config`,
		Short:   "Remove what gantry install wrote, and every Knative object with it",
		Long: `Remove Gantry's serving stack from the cluster: the webhook configurations, the CRDs
(and so every Knative Service, Revision, Route… and what they own), the gantry-system
namespace and the RBAC. It waits until they are gone and fails naming anything left.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			quietControllerRuntime()
			cfg, err := clusterConfig(kubeconfig)
			if err != nil {
				return err
			}
			log, err := tracing.NewLogger(os.Stderr, tracing.LogText, slog.LevelInfo)
			if err != nil {
				return err
			}
			if err := install.Uninstall(cmd.Context(), cfg, timeout, log); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Gantry is uninstalled from %s\n", cfg.Host)
			return nil
		},
	}
	cmd.Flags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default $KUBECONFIG, else the in-cluster service account)")
	cmd.Flags().DurationVar(&timeout, "timeout", timeout, "how long to wait for everything to go")
	return cmd
}
