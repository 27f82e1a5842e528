// Package cluster runs Gantry's serving stack on a cluster it does not own (cluster mode):
// the controllers, the admission webhook, the autoscaler, the activator and the gateway in
// one process that acts through a rest.Config (a kubeconfig or the pod's in-cluster
// identity), as the gantry-controller Deployment that `gantry install` writes runs them.
// The parts are the same packages `gantry server` wires in internal/standalone; here no
// embedded control plane, registry or node is near.
package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/gantry-run/gantry/internal/activator"
	"github.com/gantry-run/gantry/internal/autoscaler/hpa"
	"github.com/gantry-run/gantry/internal/autoscaler/kpa"
	"github.com/gantry-run/gantry/internal/gateway"
	"github.com/gantry-run/gantry/internal/gatewayapi"
	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/serving"
	"github.com/gantry-run/gantry/pkg/apis/config"
)

// Values of --ingress.
const (
	IngressGateway    = "gateway"
	IngressGatewayAPI = "gateway-api"
)

// Defaults of the stack's ports inside its pod.
const (
	DefaultWebhookPort = 8443
	DefaultHTTPPort    = 8080
	DefaultHealthPort  = 8081
	// DefaultActivatorPort is the activator's own port with --ingress gateway-api, Knative's
	// 8012: requests there name their revision by the Knative-Serving-Namespace/-Revision
	// headers.
	DefaultActivatorPort = 8012
	// ActivatorServiceName is the Service in front of the activator's port (in the stack's
	// namespace): the revisions' backend Services point at its endpoints while the activator
	// is in their path.
	ActivatorServiceName = "gantry-activator"
	// CertFile and KeyFile are the names of the webhook's certificate and key in CertDir (a
	// kubernetes.io/tls Secret's keys).
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
)

// Options configure the stack.
type Options struct {
	// RESTConfig is the identity every part acts as.
	RESTConfig *rest.Config
	// Namespace holds the leader-election Lease (gantry-system).
	Namespace string
	// LeaderElection: only one replica runs the controllers, the autoscaler and the gateway.
	LeaderElection bool
	// WebhookPort is the admission webhook's port; CertDir holds its certificate (tls.crt,
	// tls.key), issued for the webhook's Service.
	WebhookPort int
	CertDir     string
	// HTTPPort is the gateway's port; HealthPort serves /healthz and /readyz.
	HTTPPort, HealthPort int
	// ActivatorPort, with IngressGatewayAPI, is where the activator takes requests that name
	// their revision by header (DefaultActivatorPort when 0).
	ActivatorPort int
	// Domain is the suffix of Route hosts.
	Domain string
	// QueueProxyImage is the image of the revisions' queue-proxy container.
	QueueProxyImage string
	// ActivatorQueueDepth bounds the requests waiting for one revision's pods.
	ActivatorQueueDepth int
	// Ingress is IngressGateway (the gateway serves Routes) or IngressGatewayAPI (the
	// gateway serves them too, every Ingress also gets Gateway API HTTPRoutes attached to
	// Gateways, every Revision the Service <revision> they name, and the activator listens
	// on ActivatorPort).
	Ingress  string
	Gateways gatewayapi.Gateways
	Logger   *slog.Logger
}

// Validate names the flag of each wrong field.
func (o Options) Validate() error {
	var errs []error
	for _, p := range []struct {
		flag string
		port int
	}{{"--webhook-port", o.WebhookPort}, {"--http-port", o.HTTPPort}, {"--health-port", o.HealthPort}} {
		if p.port < 1 || p.port > 65535 {
			errs = append(errs, fmt.Errorf("%s: %d is not a port (1-65535)", p.flag, p.port))
		}
	}
	if o.CertDir == "" {
		errs = append(errs, errors.New("--cert-dir: must name the directory of the webhook's tls.crt and tls.key"))
	} else {
		for _, f := range []string{CertFile, KeyFile} {
			if _, err := os.Stat(filepath.Join(o.CertDir, f)); err != nil {
				errs = append(errs, fmt.Errorf("--cert-dir: %w", err))
			}
		}
	}
	if o.QueueProxyImage == "" {
		errs = append(errs, errors.New("--queue-proxy-image: must name the queue-proxy's image (a pod on a kubelet cannot run it from this binary)"))
	} else if _, err := image.ParseReference(o.QueueProxyImage); err != nil {
		errs = append(errs, fmt.Errorf("--queue-proxy-image: %w", err))
	}
	if o.Domain == "" {
		errs = append(errs, errors.New("--domain: must not be empty"))
	}
	if o.ActivatorQueueDepth < 1 {
		errs = append(errs, fmt.Errorf("--activator-queue-depth: %d must be at least 1", o.ActivatorQueueDepth))
	}
	switch o.Ingress {
	case "", IngressGateway:
		if o.ActivatorPort != 0 {
			errs = append(errs, errors.New("--activator-port: only with --ingress gateway-api (the gateway hands requests to the activator in process)"))
		}
	case IngressGatewayAPI:
		if o.Gateways.External.Name == "" || o.Gateways.External.Namespace == "" {
			errs = append(errs, errors.New("--gateway-api-gateway: --ingress gateway-api needs the Gateway the HTTPRoutes attach to, as namespace/name"))
		}
		if p := o.ActivatorPort; p != 0 && (p < 1 || p > 65535) {
			errs = append(errs, fmt.Errorf("--activator-port: %d is not a port (1-65535)", p))
		} else if p := cmp.Or(p, DefaultActivatorPort); p == o.HTTPPort || p == o.WebhookPort || p == o.HealthPort {
			errs = append(errs, fmt.Errorf("--activator-port: %d is taken by another of the stack's ports", p))
		}
	default:
		errs = append(errs, fmt.Errorf("--ingress: %q is not one of %s, %s", o.Ingress, IngressGateway, IngressGatewayAPI))
	}
	if o.LeaderElection && o.Namespace == "" {
		errs = append(errs, errors.New("--namespace: leader election needs the namespace of its Lease"))
	}
	return errors.Join(errs...)
}

// Stack is the serving stack of one replica.
type Stack struct {
	Serving    *serving.Serving
	Autoscaler *kpa.Autoscaler
	Activator  *activator.Activator
	Gateway    *gateway.Gateway
}

// New builds the stack without contacting the API server.
func New(opts Options) (*Stack, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Namespace == "" {
		opts.Namespace = config.Namespace
	}
	// Tags are resolved to digests by asking the registry; no layer is downloaded, so the
	// store's directory stays empty.
	resolver, err := image.NewStore(filepath.Join(os.TempDir(), "gantry-resolver"), image.StoreOptions{Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	srv, err := serving.New(serving.Options{
		RESTConfig:              opts.RESTConfig,
		Domain:                  opts.Domain,
		WebhookPort:             opts.WebhookPort,
		WebhookCertFile:         filepath.Join(opts.CertDir, CertFile),
		WebhookKeyFile:          filepath.Join(opts.CertDir, KeyFile),
		Resolver:                resolver,
		QueueProxyImage:         opts.QueueProxyImage,
		Installed:               true,
		LeaderElection:          opts.LeaderElection,
		LeaderElectionNamespace: opts.Namespace,
		HealthProbeAddress:      net.JoinHostPort("", strconv.Itoa(opts.HealthPort)),
		Logger:                  opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	mgr := srv.Manager()
	s := &Stack{Serving: srv}
	s.Autoscaler = kpa.New(kpa.Options{
		Client:   mgr.GetClient(),
		Config:   srv.Config(),
		Recorder: mgr.GetEventRecorder("autoscaler"),
		Logger:   opts.Logger,
	})
	// The activator asks the autoscaler of its own process to scale from zero: the two run
	// in one replica, the leader.
	s.Activator = activator.New(activator.Options{
		Client:     mgr.GetClient(),
		Scaler:     s.Autoscaler,
		Reporter:   s.Autoscaler,
		QueueDepth: int64(opts.ActivatorQueueDepth),
		Logger:     opts.Logger,
	})
	listeners := []gateway.Listener{{Addr: net.JoinHostPort("", strconv.Itoa(opts.HTTPPort))}}
	if opts.Ingress == IngressGatewayAPI {
		// The revisions' backend Services point here while the activator is in their path.
		listeners = append(listeners, gateway.Listener{
			Addr:    net.JoinHostPort("", strconv.Itoa(cmp.Or(opts.ActivatorPort, DefaultActivatorPort))),
			Handler: s.Activator,
		})
	}
	s.Gateway = gateway.New(gateway.Options{
		Client:    mgr.GetClient(),
		Revisions: s.Activator,
		Listeners: listeners,
		Logger:    opts.Logger,
	})
	srv.Add(s.Autoscaler)
	srv.Add(hpa.New(hpa.Options{Client: mgr.GetClient(), Config: srv.Config(), Logger: opts.Logger}))
	srv.Add(s.Activator)
	srv.Add(s.Gateway)
	if opts.Ingress == IngressGatewayAPI {
		if opts.Gateways.Local.Name == "" {
			opts.Gateways.Local = opts.Gateways.External
		}
		srv.Add(&gatewayapi.Reconciler{Client: mgr.GetClient(), Gateways: opts.Gateways})
		srv.Add(&gatewayapi.BackendReconciler{
			Client:    mgr.GetClient(),
			Activator: types.NamespacedName{Namespace: opts.Namespace, Name: ActivatorServiceName},
			Logger:    opts.Logger,
		})
	}
	return s, nil
}

// Start runs the stack until ctx ends.
func (s *Stack) Start(ctx context.Context) error { return s.Serving.Start(ctx) }
