// Package standalone composes Gantry's parts into one process, as `gantry server` runs them:
// the embedded control plane, the embedded image registry, and the Knative Serving stack
// (CRDs, admission webhook, controllers). Tests start the same composition through testenv.
package standalone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/gantry-run/gantry/internal/controlplane"
	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/serving"
)

// Defaults for the parts this package adds to the control plane.
const (
	DefaultWebhookPort = 6444
	servingStopTimeout = 20 * time.Second
)

// Config is the whole server's configuration.
type Config struct {
	ControlPlane controlplane.Config
	// Domain is the suffix of Route hosts (default localhost).
	Domain string
	// WebhookPort is the admission webhook's port on loopback.
	WebhookPort int
	// RegistryAddr is the embedded registry's loopback address.
	RegistryAddr string
	// Logger receives the registry's and store's logs.
	Logger *slog.Logger
}

// DefaultConfig has every default filled in.
func DefaultConfig() Config {
	return Config{
		ControlPlane: controlplane.DefaultConfig(),
		Domain:       serving.DefaultDomain,
		WebhookPort:  DefaultWebhookPort,
		RegistryAddr: image.DefaultRegistryAddr,
	}
}

// Validate checks the fields this package adds and names the flag of each wrong one.
func (c Config) Validate() error {
	var errs []error
	if err := c.ControlPlane.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.WebhookPort < 1 || c.WebhookPort > 65535 {
		errs = append(errs, fmt.Errorf("--webhook-port: %d is not a port (1-65535)", c.WebhookPort))
	}
	if err := image.CheckLoopback(c.RegistryAddr); err != nil {
		errs = append(errs, fmt.Errorf("--registry-addr: %w", err))
	}
	if c.Domain == "" {
		errs = append(errs, errors.New("--domain: must not be empty"))
	}
	return errors.Join(errs...)
}

// Server is a running standalone Gantry.
type Server struct {
	ControlPlane *controlplane.ControlPlane
	Registry     *image.Registry
	Store        *image.Store
	Serving      *serving.Serving

	cancelServing context.CancelFunc
}

// Start brings every part up and returns once the API serves the serving.knative.dev kinds
// with admission in place. Bad input fails before anything in the data dir is touched.
func Start(ctx context.Context, cfg Config) (s *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	webhookAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.WebhookPort))
	if err := controlplane.CheckListeners(
		controlplane.Listener{Flag: "--webhook-port", Addr: webhookAddr},
		controlplane.Listener{Flag: "--registry-addr", Addr: cfg.RegistryAddr},
	); err != nil {
		return nil, err
	}
	cp, err := controlplane.Start(ctx, cfg.ControlPlane)
	if err != nil {
		return nil, err
	}
	s = &Server{ControlPlane: cp}
	defer func() {
		if err != nil {
			stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = s.Stop(stopCtx)
		}
	}()

	s.Registry, err = image.NewRegistry(image.RegistryOptions{Addr: cfg.RegistryAddr, Dir: cp.DataDirJoin("registry"), Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	if err := s.Registry.Start(ctx); err != nil {
		return nil, fmt.Errorf("starting the embedded registry: %w", err)
	}
	s.Store, err = image.NewStore(cp.DataDirJoin("images"), image.StoreOptions{Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}

	ca, err := os.ReadFile(cp.Certs().CACert())
	if err != nil {
		return nil, err
	}
	servingCtx, cancel := context.WithCancel(context.Background())
	s.cancelServing = cancel
	s.Serving, err = serving.Start(servingCtx, serving.Options{
		RESTConfig:      cp.GantryRESTConfig(),
		Domain:          cfg.Domain,
		WebhookHost:     "127.0.0.1",
		WebhookPort:     cfg.WebhookPort,
		WebhookCertFile: cp.Certs().WebhookCert(),
		WebhookKeyFile:  cp.Certs().WebhookKey(),
		CABundle:        ca,
		Resolver:        s.Store,
		SkipResolution:  serving.DefaultSkipResolution,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the serving controllers: %w", err)
	}
	return s, nil
}

// Failed is closed when a part stops on its own.
func (s *Server) Failed() <-chan struct{} {
	failed := make(chan struct{})
	go func() {
		select {
		case <-s.ControlPlane.Failed():
		case <-s.Serving.Done():
		}
		close(failed)
	}()
	return failed
}

// Err says which part failed and why.
func (s *Server) Err() error {
	if err := s.ControlPlane.Err(); err != nil {
		return err
	}
	select {
	case <-s.Serving.Done():
		if err := s.Serving.Err(); err != nil {
			return fmt.Errorf("serving controllers: %w", err)
		}
		return errors.New("serving controllers stopped")
	default:
		return nil
	}
}

// Stop stops the parts in reverse order: serving, registry, then the control plane.
func (s *Server) Stop(ctx context.Context) error {
	var errs []error
	if s.cancelServing != nil {
		s.cancelServing()
		if s.Serving != nil {
			select {
			case <-s.Serving.Done():
			case <-time.After(servingStopTimeout):
				errs = append(errs, fmt.Errorf("serving controllers did not stop within %s", servingStopTimeout))
			}
		}
	}
	if s.Registry != nil {
		if err := s.Registry.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping the embedded registry: %w", err))
		}
	}
	if err := s.ControlPlane.Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
