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

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"

	"github.com/gantry-run/gantry/internal/controlplane"
	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/node"
	"github.com/gantry-run/gantry/internal/sandbox"
	"github.com/gantry-run/gantry/internal/serving"
)

// Defaults for the parts this package adds to the control plane.
const (
	DefaultWebhookPort = 6444
	DefaultNodeName    = "gantry"
	DefaultKubeletPort = 10250
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
	// Node runs the serverless node; without it pods stay Pending.
	Node bool
	// NodeName is the Node's name.
	NodeName string
	// KubeletPort is the port of the node's kubelet API (logs).
	KubeletPort int
	// PodCIDR is the range pod addresses come from.
	PodCIDR string
	// Bridge is the host bridge the pods join; servers on one machine need their own
	// bridge and pod range.
	Bridge string
	// Executable is the gantry binary the node runs queue-proxies from; empty means this
	// process's own executable.
	Executable string
	// Logger receives the registry's, store's and node's logs.
	Logger *slog.Logger
}

// DefaultConfig has every default filled in.
func DefaultConfig() Config {
	return Config{
		ControlPlane: controlplane.DefaultConfig(),
		Domain:       serving.DefaultDomain,
		WebhookPort:  DefaultWebhookPort,
		RegistryAddr: image.DefaultRegistryAddr,
		Node:         true,
		NodeName:     DefaultNodeName,
		KubeletPort:  DefaultKubeletPort,
		PodCIDR:      sandbox.DefaultPodCIDR,
		Bridge:       sandbox.DefaultBridge,
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
	if c.Node {
		if c.KubeletPort < 1 || c.KubeletPort > 65535 {
			errs = append(errs, fmt.Errorf("--kubelet-port: %d is not a port (1-65535)", c.KubeletPort))
		}
		if _, _, err := net.ParseCIDR(c.PodCIDR); err != nil {
			errs = append(errs, fmt.Errorf("--pod-cidr: %q is not a CIDR", c.PodCIDR))
		}
		if c.NodeName == "" {
			errs = append(errs, errors.New("--node-name: must not be empty"))
		}
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
	Node         *node.Node
	Sandboxes    *sandbox.Manager

	cancelServing context.CancelFunc
	cancelNode    context.CancelFunc
	nodeDone      chan error
	nodeErr       error
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
	listeners := []controlplane.Listener{
		{Flag: "--webhook-port", Addr: webhookAddr},
		{Flag: "--registry-addr", Addr: cfg.RegistryAddr},
	}
	if cfg.Node {
		listeners = append(listeners, controlplane.Listener{Flag: "--kubelet-port", Addr: net.JoinHostPort("", strconv.Itoa(cfg.KubeletPort))})
	}
	if err := controlplane.CheckListeners(listeners...); err != nil {
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
	if cfg.Node {
		if err := s.startNode(ctx, cfg); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// startNode starts the serverless node and waits until it is registered and syncing pods.
func (s *Server) startNode(ctx context.Context, cfg Config) error {
	cp := s.ControlPlane
	sandboxes, err := sandbox.NewManager(ctx, sandbox.Options{Root: cp.DataDirJoin("sandboxes"), PodCIDR: cfg.PodCIDR, Bridge: cfg.Bridge})
	if err != nil {
		return fmt.Errorf("serverless node: %w", err)
	}
	s.Sandboxes = sandboxes
	exe := cfg.Executable
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return fmt.Errorf("serverless node: %w", err)
		}
	}
	clientset, err := kubernetes.NewForConfig(cp.GantryRESTConfig())
	if err != nil {
		return err
	}
	ip := nodeIP(cfg.ControlPlane.AdvertiseAddress)
	certs := cp.Certs()
	s.Node, err = node.New(node.Options{
		Info:            node.MachineInfo(cfg.NodeName, ip, cfg.KubeletPort, cp.DataDir()),
		Client:          clientset,
		Sandboxes:       sandboxes,
		Images:          s.Store,
		StateDir:        cp.DataDirJoin("node"),
		Executable:      exe,
		KubeletCertFile: certs.ServingCert(),
		KubeletKeyFile:  certs.ServingKey(),
		ClientCAFile:    certs.CACert(),
		Logger:          cfg.Logger,
	})
	if err != nil {
		return err
	}
	nodeCtx, cancel := context.WithCancel(context.Background())
	s.cancelNode = cancel
	s.nodeDone = make(chan error, 1)
	go func() { s.nodeDone <- s.Node.Run(nodeCtx) }()
	select {
	case <-s.Node.Ready():
		return nil
	case err := <-s.nodeDone:
		s.nodeDone <- err
		return fmt.Errorf("serverless node: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// nodeIP is the address the Node advertises: the API server's advertise address, else the
// host's default interface, else loopback.
func nodeIP(advertise string) net.IP {
	if ip := net.ParseIP(advertise); ip != nil {
		return ip
	}
	if ip, err := utilnet.ChooseHostInterface(); err == nil {
		return ip
	}
	return net.IPv4(127, 0, 0, 1)
}

// Failed is closed when a part stops on its own.
func (s *Server) Failed() <-chan struct{} {
	failed := make(chan struct{})
	go func() {
		select {
		case <-s.ControlPlane.Failed():
		case <-s.Serving.Done():
		case err := <-s.nodeDone:
			s.nodeErr = fmt.Errorf("serverless node: %w", errOrStopped(err))
			s.nodeDone <- err
		}
		close(failed)
	}()
	return failed
}

func errOrStopped(err error) error {
	if err == nil {
		return errors.New("stopped")
	}
	return err
}

// Err says which part failed and why.
func (s *Server) Err() error {
	if err := s.ControlPlane.Err(); err != nil {
		return err
	}
	if s.nodeErr != nil {
		return s.nodeErr
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

// Stop stops the parts in reverse order: node, serving, registry, then the control plane.
// Sandboxes keep running; the next start re-adopts them.
func (s *Server) Stop(ctx context.Context) error {
	var errs []error
	if s.cancelNode != nil {
		s.cancelNode()
		select {
		case <-s.nodeDone: //nolint:errcheck // stopping: how the node ended does not matter
		case <-time.After(servingStopTimeout):
			errs = append(errs, fmt.Errorf("serverless node did not stop within %s", servingStopTimeout))
		}
	}
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
