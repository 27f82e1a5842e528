package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/gantry-run/gantry/internal/dns"
	"github.com/gantry-run/gantry/internal/gatewayservice"
	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
)

// clusterDNS is the agent's cluster DNS server on its pods' gateway address, as gantry
// server's: it answers cluster.local from the Services, EndpointSlices and Knative Ingresses
// it watches as the node (the server lets nodes read them with --cluster-cidr).
type clusterDNS struct {
	restConfig *rest.Config
	server     *dns.Server
}

// The agent runs no gateway: a Knative Service's cluster names resolve to the ClusterIP of the
// servers' gateways (kube-system/gantry-gateway), which its kube-proxy sends to a server's
// gateway over the overlay.
func newClusterDNS(restConfig *rest.Config, gateway net.IP, log *slog.Logger) *clusterDNS {
	return &clusterDNS{restConfig: restConfig, server: dns.New(dns.Options{Addr: gateway, GatewayService: gatewayservice.Key, Logger: log})}
}

// Ready is closed once the zone holds the whole cluster and the server answers.
func (d *clusterDNS) Ready() <-chan struct{} { return d.server.Ready() }

// Start watches the cluster and serves until ctx ends.
func (d *clusterDNS) Start(ctx context.Context) error {
	scheme := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(scheme), netv1alpha1.AddToScheme(scheme)); err != nil {
		return fmt.Errorf("cluster DNS: scheme: %w", err)
	}
	mgr, err := ctrl.NewManager(d.restConfig, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// One DNS server per node, answering for it alone.
		LeaderElection: false,
	})
	if err != nil {
		return fmt.Errorf("cluster DNS: %w", err)
	}
	if err := d.server.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("cluster DNS: %w", err)
	}
	return mgr.Start(ctx)
}
