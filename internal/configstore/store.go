// Package configstore keeps Gantry's configuration in step with its ConfigMaps
// (config-defaults, config-features, config-autoscaler, config-network, config-deployment in
// the gantry-system namespace), as Knative's config stores do: it creates them with Knative's
// keys documented on first start, watches them, and hands the parsed configuration to the
// webhook and the reconcilers through Load, so a change applies to new work without a
// restart. It runs against any cluster: it needs only a client.
package configstore

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/gantry-run/gantry/pkg/apis/config"
)

// resync is how often the informer re-lists: a safety net, changes arrive by watch.
const resync = 10 * time.Minute

// Store is the configuration in force. Its zero value is not usable; call New.
type Store struct {
	client kubernetes.Interface
	log    *slog.Logger
	cur    atomic.Pointer[config.Config]
	ready  chan struct{}
	// queueImage is the queue-proxy image where config-deployment names none.
	queueImage string
	// tracingEndpoint and tracingRatio are the queue-proxy's tracing (SetQueueTracing).
	tracingEndpoint string
	tracingRatio    float64
}

var _ config.Source = (*Store)(nil)

// New returns a store that gives the shipped defaults until Start has read the ConfigMaps.
func New(client kubernetes.Interface, log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{client: client, log: log.With("component", "config"), ready: make(chan struct{})}
	s.cur.Store(config.NewConfig())
	return s
}

// SetQueueSidecarImage makes image the queue-proxy's image wherever config-deployment does not
// name one (cluster mode runs an image built from this repository). Call it before Start.
func (s *Store) SetQueueSidecarImage(image string) {
	s.queueImage = image
	c := *s.cur.Load()
	s.cur.Store(s.withServerSettings(&c, nil))
}

// SetQueueTracing gives every queue-proxy an OTLP endpoint for its spans and the share of
// the traces it starts that it records; an empty endpoint (the default) turns its tracing
// off. The server's --otlp-endpoint sets it. Call it before Start.
func (s *Store) SetQueueTracing(endpoint string, ratio float64) {
	s.tracingEndpoint, s.tracingRatio = endpoint, ratio
	c := *s.cur.Load()
	s.cur.Store(s.withServerSettings(&c, nil))
}

// withServerSettings gives c's Deployment what the server sets rather than a ConfigMap: the
// store's queue-proxy image unless data (config-deployment's) sets one, and the
// queue-proxy's tracing.
func (s *Store) withServerSettings(c *config.Config, data map[string]string) *config.Config {
	d := *c.Deployment
	if _, set := data["queue-sidecar-image"]; s.queueImage != "" && !set {
		d.QueueSidecarImage = s.queueImage
	}
	d.QueueTracingEndpoint, d.QueueTracingSamplingRatio = s.tracingEndpoint, s.tracingRatio
	c.Deployment = &d
	return c
}

// Load returns the configuration in force; callers must not modify it.
func (s *Store) Load() *config.Config { return s.cur.Load() }

// Ready is closed once the store has read the ConfigMaps.
func (s *Store) Ready() <-chan struct{} { return s.ready }

// Start watches the ConfigMaps until ctx ends.
func (s *Store) Start(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(s.client, resync, informers.WithNamespace(config.Namespace))
	cms := factory.Core().V1().ConfigMaps()
	lister := cms.Lister()
	reload := func(obj any) {
		if cm, ok := obj.(*corev1.ConfigMap); ok && !config.IsConfigMap(cm.Name) {
			return
		}
		s.reload(lister)
	}
	if _, err := cms.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    reload,
		UpdateFunc: func(_, o any) { reload(o) },
		DeleteFunc: func(any) { s.reload(lister) },
	}); err != nil {
		return fmt.Errorf("watching configuration: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("configuration: cache of %v did not sync", typ)
		}
	}
	s.reload(lister)
	close(s.ready)
	<-ctx.Done()
	return nil
}

// reload parses every ConfigMap anew: a missing one means its defaults. A value that does not
// parse (the validating webhook refuses those; this guards a cluster without it) keeps the
// part that was in force and is logged with the key.
func (s *Store) reload(lister corelisters.ConfigMapLister) {
	prev := s.cur.Load()
	next := *prev
	for _, name := range config.Names() {
		var data map[string]string
		cm, err := lister.ConfigMaps(config.Namespace).Get(name)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			s.log.Warn("reading configuration", "configmap", name, "err", err)
			continue
		default:
			data = cm.Data
		}
		if err := next.Apply(name, data); err != nil {
			s.log.Warn("configuration refused; keeping the values in force", "err", err)
			continue
		}
		if name == config.DeploymentConfigName {
			s.withServerSettings(&next, data)
		}
	}
	s.cur.Store(&next)
}

// Ensure creates the configuration namespace and every ConfigMap that does not exist, each
// holding only Knative's "_example" block (every key with its default). Existing ConfigMaps
// are never touched.
func Ensure(ctx context.Context, client kubernetes.Interface) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: config.Namespace}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", config.Namespace, err)
	}
	for _, name := range config.Names() {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: config.Namespace,
				Labels: map[string]string{"app.kubernetes.io/part-of": "gantry", "app.kubernetes.io/managed-by": "gantry"},
			},
			Data: map[string]string{config.ExampleKey: config.Example(name)},
		}
		if _, err := client.CoreV1().ConfigMaps(config.Namespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating ConfigMap %s/%s: %w", config.Namespace, name, err)
		}
	}
	return nil
}
