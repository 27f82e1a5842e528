// Package serving runs the Knative Serving API on a cluster: it installs the
// serving.knative.dev CRDs, keeps the configuration ConfigMaps, serves and registers the
// admission webhook, and runs the Service, Configuration, Revision and Route controllers in
// one controller-runtime manager that later data-plane parts join.
package serving

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/gantry-run/gantry/config/crd"
	"github.com/gantry-run/gantry/internal/configstore"
	"github.com/gantry-run/gantry/internal/lifecycle"
	"github.com/gantry-run/gantry/internal/reconciler/configuration"
	"github.com/gantry-run/gantry/internal/reconciler/revision"
	"github.com/gantry-run/gantry/internal/reconciler/route"
	"github.com/gantry-run/gantry/internal/reconciler/service"
	gantrywebhook "github.com/gantry-run/gantry/internal/webhook"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	"github.com/gantry-run/gantry/pkg/apis/config"
	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// DefaultDomain is the standalone domain: curl resolves *.localhost to loopback.
const DefaultDomain = "localhost"

// Options configure the serving stack.
type Options struct {
	// RESTConfig is the identity the controllers and the installer act as.
	RESTConfig *rest.Config
	// Domain is the suffix of Route hosts.
	Domain string
	// WebhookHost and WebhookPort are where the admission webhook listens; the API server
	// calls it there.
	WebhookHost string
	WebhookPort int
	// WebhookCertFile and WebhookKeyFile are its serving certificate; CAFile verifies it.
	WebhookCertFile, WebhookKeyFile string
	CAFile                          string
	// Resolver turns image tags into digests for new Revisions.
	Resolver revision.Resolver
	// QueueProxyImage is the queue-proxy's image where config-deployment's
	// queue-sidecar-image does not name one; empty means the sentinel the serverless node runs
	// from the gantry binary. Cluster mode sets an image built from this repository.
	QueueProxyImage string
	// QueueTracingEndpoint, when set, is the OTLP/HTTP endpoint every queue-proxy sends its
	// spans to, recording QueueTracingSamplingRatio of the traces it starts itself.
	QueueTracingEndpoint      string
	QueueTracingSamplingRatio float64
	// Installed says the CRDs and the webhook configurations were written by `gantry
	// install` (cluster mode): the stack neither writes them nor needs the right to.
	Installed bool
	// LeaderElection runs the controllers and the autoscaler on one replica at a time, holding
	// the Lease LeaderElectionID in LeaderElectionNamespace (kube-system when empty): the servers
	// of an HA cluster, or the replicas of cluster mode's Deployment (which also run the gateway
	// on the leader only). The webhook serves on every replica.
	LeaderElection          bool
	LeaderElectionNamespace string
	// LeaderElectionIdentity, when set, is this replica's identity in the Lease (its
	// holderIdentity while it leads); default controller-runtime's (the host name and a UUID).
	// The servers of a cluster put the URL of their autoscaler's endpoint in it, where the
	// other servers' activators find the leader (package scalerelay).
	LeaderElectionIdentity string
	// HealthProbeAddress, when set, serves /healthz and /readyz there: ready once the
	// webhook serves and, with leader election, this replica leads.
	HealthProbeAddress string
	// Logger receives the configuration store's logs.
	Logger *slog.Logger
}

// LeaderElectionID is the Lease the serving stack's leader is elected by: among the servers of
// a cluster, or the replicas of cluster mode's Deployment.
const LeaderElectionID = "gantry-serving-controllers"

// Scheme knows the Kubernetes built-ins, serving.knative.dev/v1, the Ingress, the
// PodAutoscaler and Gateway API's v1 kinds (the HTTPRoutes of cluster mode's gateway-api
// ingress).
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(s), servingv1.AddToScheme(s), netv1alpha1.AddToScheme(s), pav1alpha1.AddToScheme(s), gwv1.Install(s)); err != nil {
		panic(fmt.Sprintf("building the serving scheme: %v", err))
	}
	return s
}

// Serving is the serving stack: the configuration store, the admission webhook and the four
// controllers in one controller-runtime manager. Later parts of the data plane (gateway,
// activator, autoscaler) join the manager with Manager().Add and share its cache, in
// standalone and in cluster mode alike.
type Serving struct {
	opts   Options
	mgr    manager.Manager
	store  *configstore.Store
	client kubernetes.Interface
	ready  chan struct{}
	parts  []Component
}

// Component is a part of the data plane that joins the serving manager: its controllers,
// watches and runnables share the manager's cache. SetupWithManager runs in Start, once the
// API server serves the CRDs, before the manager starts.
type Component interface {
	SetupWithManager(ctx context.Context, mgr manager.Manager) error
}

// Add registers c; call it before Start.
func (s *Serving) Add(c Component) { s.parts = append(s.parts, c) }

// New builds the stack without contacting the API server; Start runs it.
func New(opts Options) (*Serving, error) {
	if opts.Domain == "" {
		opts.Domain = DefaultDomain
	}
	ctrl.SetLogger(klog.NewKlogr())
	clientset, err := kubernetes.NewForConfig(opts.RESTConfig)
	if err != nil {
		return nil, err
	}
	store := configstore.New(clientset, opts.Logger)
	if opts.QueueProxyImage != "" {
		store.SetQueueSidecarImage(opts.QueueProxyImage)
	}
	if opts.QueueTracingEndpoint != "" {
		store.SetQueueTracing(opts.QueueTracingEndpoint, opts.QueueTracingSamplingRatio)
	}
	whServer := webhook.NewServer(webhook.Options{
		Host:     opts.WebhookHost,
		Port:     opts.WebhookPort,
		CertDir:  filepath.Dir(opts.WebhookCertFile),
		CertName: filepath.Base(opts.WebhookCertFile),
		KeyName:  filepath.Base(opts.WebhookKeyFile),
		// HTTP/1.1 only: an HTTP/2 server's graceful stop waits a second for the API server to
		// close its connection after GOAWAY, and HTTP/2 brings its own attack surface
		// (controller-runtime's own advice for webhooks).
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
	})
	whServer.Register(gantrywebhook.DefaultingPath, &webhook.Admission{Handler: gantrywebhook.Defaulting(store)})
	whServer.Register(gantrywebhook.ValidationPath, &webhook.Admission{Handler: gantrywebhook.Validation(store)})
	whServer.Register(gantrywebhook.ConfigValidationPath, &webhook.Admission{Handler: gantrywebhook.ConfigValidation()})

	probeAddr := "0"
	if opts.HealthProbeAddress != "" {
		probeAddr = opts.HealthProbeAddress
	}
	var lock resourcelock.Interface
	if opts.LeaderElection && opts.LeaderElectionIdentity != "" {
		lock, err = resourcelock.New(resourcelock.LeasesResourceLock, cmp.Or(opts.LeaderElectionNamespace, metav1.NamespaceSystem),
			LeaderElectionID, clientset.CoreV1(), clientset.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: opts.LeaderElectionIdentity})
		if err != nil {
			return nil, fmt.Errorf("the serving leader's lease: %w", err)
		}
	}
	mgr, err := ctrl.NewManager(opts.RESTConfig, ctrl.Options{
		Scheme: Scheme(),
		// Nothing here reads managedFields, and they are often the larger part of an object:
		// with thousands of revisions, keeping them would cost the cache most of its memory.
		Cache:                  cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: probeAddr,
		WebhookServer:          whServer,
		// A single server needs no leader election (its data dir is locked); the servers of a
		// cluster, or the replicas of cluster mode's Deployment, elect one.
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        LeaderElectionID,
		LeaderElectionNamespace: cmp.Or(opts.LeaderElectionNamespace, metav1.NamespaceSystem),
		// With an identity of our own, the lock is built here (nil: controller-runtime's).
		LeaderElectionResourceLockInterface: lock,
		// A replica that stops hands the lease over at once, not after it expires.
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 ptr.To(lifecycle.LeaseDuration),
		RenewDeadline:                 ptr.To(lifecycle.RenewDeadline),
		RetryPeriod:                   ptr.To(lifecycle.RetryPeriod),
	})
	if err != nil {
		return nil, fmt.Errorf("creating the serving controller manager: %w", err)
	}
	if opts.HealthProbeAddress != "" {
		started := whServer.StartedChecker()
		elected := mgr.Elected()
		if err := errors.Join(
			mgr.AddHealthzCheck("ping", healthz.Ping),
			mgr.AddReadyzCheck("webhook", started),
			// Only the leader runs the gateway: a Service in front of the replicas sends
			// traffic to it alone.
			mgr.AddReadyzCheck("leader", func(*http.Request) error {
				select {
				case <-elected:
					return nil
				default:
					return errors.New("not the leader")
				}
			}),
		); err != nil {
			return nil, err
		}
	}
	return &Serving{opts: opts, mgr: mgr, store: store, client: clientset, ready: make(chan struct{})}, nil
}

// Manager is the controller-runtime manager the controllers run in; add data-plane parts to
// it as runnables.
func (s *Serving) Manager() manager.Manager { return s.mgr }

// Config is the configuration in force, kept in step with the ConfigMaps.
func (s *Serving) Config() config.Source { return s.store }

// Ready is closed once admission works and the controllers' caches are synced.
func (s *Serving) Ready() <-chan struct{} { return s.ready }

// setupControllers adds the four controllers to the manager. Their indexes need the API
// server's discovery, so this runs in Start, not New.
func (s *Serving) setupControllers(ctx context.Context) error {
	mgr := s.mgr
	recorder := mgr.GetEventRecorder("serving-controller")
	c := mgr.GetClient()
	if err := errors.Join(
		(&service.Reconciler{Client: c, Recorder: recorder, Config: s.store}).SetupWithManager(mgr),
		(&configuration.Reconciler{Client: c, Recorder: recorder, Config: s.store}).SetupWithManager(mgr),
		(&revision.Reconciler{Client: c, Recorder: recorder, Config: s.store, Resolver: s.opts.Resolver}).SetupWithManager(mgr),
		(&route.Reconciler{Client: c, Recorder: recorder, Config: s.store, Domain: s.opts.Domain}).SetupWithManager(ctx, mgr),
	); err != nil {
		return fmt.Errorf("setting up the serving controllers: %w", err)
	}
	for _, c := range s.parts {
		if err := c.SetupWithManager(ctx, mgr); err != nil {
			return err
		}
	}
	return nil
}

// Start installs the CRDs, reads the configuration, starts the webhook and the controllers,
// registers the webhook and creates the configuration ConfigMaps that are missing; it then
// runs until ctx ends.
func (s *Serving) Start(ctx context.Context) error {
	if s.opts.Installed {
		if err := WaitCRDs(ctx, s.opts.RESTConfig); err != nil {
			return err
		}
	} else if err := InstallCRDs(ctx, s.opts.RESTConfig); err != nil {
		return err
	}
	if err := s.setupControllers(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The configuration is read before any controller or admission call needs it.
	storeDone := make(chan error, 1)
	go func() { storeDone <- s.store.Start(ctx) }()
	select {
	case <-s.store.Ready():
	case err := <-storeDone:
		return errors.Join(err, errors.New("configuration store stopped while starting"))
	case <-ctx.Done():
		return nil
	}
	// mgrErr is set before mgrDone closes.
	var mgrErr error
	mgrDone := make(chan struct{})
	go func() {
		mgrErr = s.mgr.Start(ctx)
		close(mgrDone)
	}()
	if err := s.finishStart(ctx, mgrDone); err != nil {
		cancel()
		<-mgrDone
		return errors.Join(err, mgrErr, <-storeDone)
	}
	close(s.ready)
	select {
	case <-mgrDone:
		err := mgrErr
		if err == nil && ctx.Err() == nil {
			err = errors.New("controller manager stopped")
		}
		cancel()
		return errors.Join(err, <-storeDone)
	case err := <-storeDone:
		cancel()
		<-mgrDone
		if err == nil && ctx.Err() == nil {
			err = errors.New("configuration store stopped")
		}
		return errors.Join(err, mgrErr)
	}
}

// finishStart waits for the webhook server, registers it, creates the missing ConfigMaps (the
// webhook now validates them) and waits for the caches.
func (s *Serving) finishStart(ctx context.Context, mgrDone <-chan struct{}) error {
	if err := waitServing(ctx, s.mgr.GetWebhookServer(), mgrDone); err != nil {
		return err
	}
	if s.opts.Installed {
		// gantry install wrote the webhook configurations and the ConfigMaps.
		if !s.mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("serving controllers: informer caches did not sync")
		}
		return nil
	}
	ca, err := os.ReadFile(s.opts.CAFile)
	if err != nil {
		return fmt.Errorf("reading the webhook's CA: %w", err)
	}
	baseURL := "https://" + net.JoinHostPort(s.opts.WebhookHost, strconv.Itoa(s.opts.WebhookPort))
	if err := gantrywebhook.Register(ctx, s.client, baseURL, ca); err != nil {
		return fmt.Errorf("registering the admission webhook: %w", err)
	}
	if err := configstore.Ensure(ctx, s.client); err != nil {
		return err
	}
	if !s.mgr.GetCache().WaitForCacheSync(ctx) {
		return errors.New("serving controllers: informer caches did not sync")
	}
	return nil
}

func waitServing(ctx context.Context, srv webhook.Server, mgrDone <-chan struct{}) error {
	check := srv.StartedChecker()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(context.Context) (bool, error) {
		select {
		case <-mgrDone:
			return false, errors.New("serving controller manager stopped while starting")
		default:
		}
		return check(nil) == nil, nil
	})
}

// CRDs are the CRDs of config/crd: Knative's kinds and Gantry's own.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	files, err := fs.Glob(crd.FS, "*.yaml")
	if err != nil {
		return nil, err
	}
	out := make([]*apiextensionsv1.CustomResourceDefinition, 0, len(files))
	for _, f := range files {
		data, err := crd.FS.ReadFile(f)
		if err != nil {
			return nil, err
		}
		c := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, c); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", f, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// InstallCRDs creates or updates the serving.knative.dev CRDs and waits until the API server
// serves them.
func InstallCRDs(ctx context.Context, cfg *rest.Config) error {
	client, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	crds := client.ApiextensionsV1().CustomResourceDefinitions()
	all, err := CRDs()
	if err != nil {
		return err
	}
	for _, want := range all {
		cur, err := crds.Get(ctx, want.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			if _, err := crds.Create(ctx, want, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("creating CRD %s: %w", want.Name, err)
			}
		case err != nil:
			return fmt.Errorf("reading CRD %s: %w", want.Name, err)
		default:
			cur.Spec = want.Spec
			if _, err := crds.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("updating CRD %s: %w", want.Name, err)
			}
		}
		if err := waitEstablished(ctx, client, want.Name, 30*time.Second); err != nil {
			return fmt.Errorf("CRD %s not established: %w", want.Name, err)
		}
	}
	return nil
}

// WaitCRDs waits until the API server serves every CRD of config/crd (installed by someone
// else: gantry install); it writes nothing.
func WaitCRDs(ctx context.Context, cfg *rest.Config) error {
	client, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	crds, err := CRDs()
	if err != nil {
		return err
	}
	for _, want := range crds {
		if err := waitEstablished(ctx, client, want.Name, 5*time.Minute); err != nil {
			return fmt.Errorf("CRD %s (installed by gantry install): %w", want.Name, err)
		}
	}
	return nil
}

func waitEstablished(ctx context.Context, client apiextensionsclient.Interface, name string, timeout time.Duration) error {
	crds := client.ApiextensionsV1().CustomResourceDefinitions()
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		c, err := crds.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil //nolint:nilerr // retried until the timeout
		}
		for _, cond := range c.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}
