// Package serving runs the Knative Serving API on a cluster: it installs the
// serving.knative.dev CRDs, serves and registers the admission webhook, and runs the Service,
// Configuration, Revision and Route controllers in one controller-runtime manager.
package serving

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
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
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/yaml"

	"github.com/gantry-run/gantry/config/crd"
	"github.com/gantry-run/gantry/internal/reconciler/configuration"
	"github.com/gantry-run/gantry/internal/reconciler/revision"
	"github.com/gantry-run/gantry/internal/reconciler/route"
	"github.com/gantry-run/gantry/internal/reconciler/service"
	gantrywebhook "github.com/gantry-run/gantry/internal/webhook"
	"github.com/gantry-run/gantry/pkg/apis/config"
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
	// WebhookCertFile and WebhookKeyFile are its serving certificate; CABundle verifies it.
	WebhookCertFile, WebhookKeyFile string
	CABundle                        []byte
	// Resolver turns image tags into digests for new Revisions.
	Resolver revision.Resolver
	// SkipResolution lists registries whose tags are not resolved.
	SkipResolution []string
}

// DefaultSkipResolution are Knative's registries-skipping-tag-resolving defaults.
var DefaultSkipResolution = []string{"kind.local", "ko.local", "dev.local"}

// Scheme knows the Kubernetes built-ins and serving.knative.dev/v1.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(s), servingv1.AddToScheme(s)); err != nil {
		panic(fmt.Sprintf("building the serving scheme: %v", err))
	}
	return s
}

// Serving is the running serving stack.
type Serving struct {
	done chan struct{}
	err  error
}

// Start installs the CRDs, starts the webhook and controllers, registers the webhook, and
// returns once admission works. The stack runs until ctx ends; Wait returns its error.
func Start(ctx context.Context, opts Options) (*Serving, error) {
	if opts.Domain == "" {
		opts.Domain = DefaultDomain
	}
	if err := InstallCRDs(ctx, opts.RESTConfig); err != nil {
		return nil, err
	}
	ctrl.SetLogger(klog.NewKlogr())
	whServer := webhook.NewServer(webhook.Options{
		Host:     opts.WebhookHost,
		Port:     opts.WebhookPort,
		CertDir:  filepath.Dir(opts.WebhookCertFile),
		CertName: filepath.Base(opts.WebhookCertFile),
		KeyName:  filepath.Base(opts.WebhookKeyFile),
	})
	cfg := func() *config.Config {
		return &config.Config{Defaults: config.NewDefaults(), Features: &config.Features{}}
	}
	whServer.Register(gantrywebhook.DefaultingPath, &webhook.Admission{Handler: gantrywebhook.Defaulting(cfg)})
	whServer.Register(gantrywebhook.ValidationPath, &webhook.Admission{Handler: gantrywebhook.Validation(cfg)})

	mgr, err := ctrl.NewManager(opts.RESTConfig, ctrl.Options{
		Scheme:                 Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer:          whServer,
		// One gantry server per data dir (the data dir is locked), so no leader election.
		LeaderElection: false,
	})
	if err != nil {
		return nil, fmt.Errorf("creating the serving controller manager: %w", err)
	}
	// The manager runs the webhook server only once it has been asked for it.
	whServer = mgr.GetWebhookServer()
	recorder := mgr.GetEventRecorder("serving-controller")
	c := mgr.GetClient()
	if err := errors.Join(
		(&service.Reconciler{Client: c, Recorder: recorder}).SetupWithManager(mgr),
		(&configuration.Reconciler{Client: c, Recorder: recorder}).SetupWithManager(mgr),
		(&revision.Reconciler{Client: c, Recorder: recorder, Resolver: opts.Resolver, SkipResolution: opts.SkipResolution}).SetupWithManager(mgr),
		(&route.Reconciler{Client: c, Recorder: recorder, Domain: opts.Domain}).SetupWithManager(ctx, mgr),
	); err != nil {
		return nil, fmt.Errorf("setting up the serving controllers: %w", err)
	}

	s := &Serving{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = mgr.Start(ctx)
	}()
	if err := waitServing(ctx, whServer, s.done); err != nil {
		return nil, err
	}
	clientset, err := kubernetes.NewForConfig(opts.RESTConfig)
	if err != nil {
		return nil, err
	}
	baseURL := "https://" + net.JoinHostPort(opts.WebhookHost, strconv.Itoa(opts.WebhookPort))
	if err := gantrywebhook.Register(ctx, clientset, baseURL, opts.CABundle); err != nil {
		return nil, fmt.Errorf("registering the admission webhook: %w", err)
	}
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return nil, errors.New("serving controllers: informer caches did not sync")
	}
	return s, nil
}

// Done is closed when the stack has stopped.
func (s *Serving) Done() <-chan struct{} { return s.done }

// Err is why the stack stopped, once Done is closed.
func (s *Serving) Err() error { return s.err }

func waitServing(ctx context.Context, srv webhook.Server, done <-chan struct{}) error {
	check := srv.StartedChecker()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(context.Context) (bool, error) {
		select {
		case <-done:
			return false, errors.New("serving controller manager stopped while starting")
		default:
		}
		return check(nil) == nil, nil
	})
}

// InstallCRDs creates or updates the serving.knative.dev CRDs and waits until the API server
// serves them.
func InstallCRDs(ctx context.Context, cfg *rest.Config) error {
	client, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	crds := client.ApiextensionsV1().CustomResourceDefinitions()
	files, err := fs.Glob(crd.FS, "*.yaml")
	if err != nil {
		return err
	}
	for _, f := range files {
		data, err := crd.FS.ReadFile(f)
		if err != nil {
			return err
		}
		want := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(data, want); err != nil {
			return fmt.Errorf("decoding %s: %w", f, err)
		}
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
		if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			c, err := crds.Get(ctx, want.Name, metav1.GetOptions{})
			if err != nil {
				return false, nil //nolint:nilerr // retried until the timeout
			}
			for _, cond := range c.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		}); err != nil {
			return fmt.Errorf("CRD %s not established: %w", want.Name, err)
		}
	}
	return nil
}
