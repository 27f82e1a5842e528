package admission

import (
	"context"
	"fmt"
	"os"

	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/gantry-run/gantry/internal/reconciler/serverlessprofile"
	"github.com/gantry-run/gantry/pkg/apis/config"
	sv1alpha1 "github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// Profiles in a controller-runtime manager: Webhooks joins the serving manager (its webhook
// server serves the handlers, its cache holds the profiles, the profile controller runs in
// it) and, as a part of the server started after the manager serves, registers the webhook
// configurations.
type Webhooks struct {
	// Client registers the webhook configurations.
	Client kubernetes.Interface
	// BaseURL is where the API server reaches the webhook server (https://host:port), and
	// CAFile the CA it trusts there.
	BaseURL string
	CAFile  string
	// Config gives config-serverless.
	Config config.Source

	ready chan struct{}
}

// NewWebhooks returns the serverless admission for the webhook server at baseURL.
func NewWebhooks(c kubernetes.Interface, baseURL, caFile string, cfg config.Source) *Webhooks {
	return &Webhooks{Client: c, BaseURL: baseURL, CAFile: caFile, Config: cfg, ready: make(chan struct{})}
}

// SetupWithManager adds the ServerlessProfile to the manager's scheme, serves the handlers on
// its webhook server and runs the profile controller in it.
func (w *Webhooks) SetupWithManager(_ context.Context, mgr manager.Manager) error {
	if err := sv1alpha1.AddToScheme(mgr.GetScheme()); err != nil {
		return fmt.Errorf("serverless profiles: %w", err)
	}
	srv := mgr.GetWebhookServer()
	srv.Register(PodsPath, &webhook.Admission{Handler: Pods(cachedProfiles{mgr.GetClient()}, w.Config)})
	srv.Register(ProfilesPath, &webhook.Admission{Handler: Profiles(liveProfiles{mgr.GetAPIReader()})})
	r := &serverlessprofile.Reconciler{Client: mgr.GetClient(), Pods: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("serverlessprofile-controller")}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("serverless profile controller: %w", err)
	}
	return nil
}

// Start registers the webhook configurations (the manager's webhook server serves by now)
// and runs until ctx ends.
func (w *Webhooks) Start(ctx context.Context) error {
	ca, err := os.ReadFile(w.CAFile)
	if err != nil {
		return fmt.Errorf("serverless admission: reading the webhook's CA: %w", err)
	}
	if err := Register(ctx, w.Client, w.BaseURL, ca); err != nil {
		return fmt.Errorf("serverless admission: %w", err)
	}
	close(w.ready)
	<-ctx.Done()
	return nil
}

// Ready is closed once the webhook configurations are registered.
func (w *Webhooks) Ready() <-chan struct{} { return w.ready }

// cachedProfiles lists the profiles from the manager's cache: the pod webhook answers from
// memory.
type cachedProfiles struct{ c client.Reader }

func (l cachedProfiles) ListProfiles(ctx context.Context) ([]*sv1alpha1.ServerlessProfile, error) {
	list := &sv1alpha1.ServerlessProfileList{}
	if err := l.c.List(ctx, list); err != nil {
		return nil, err
	}
	out := make([]*sv1alpha1.ServerlessProfile, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// liveProfiles counts the profiles from the API.
type liveProfiles struct{ c client.Reader }

func (l liveProfiles) CountProfiles(ctx context.Context) (int, error) {
	list := &sv1alpha1.ServerlessProfileList{}
	if err := l.c.List(ctx, list); err != nil {
		return 0, err
	}
	return len(list.Items), nil
}
