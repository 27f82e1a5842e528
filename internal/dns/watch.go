package dns

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/gantry-run/gantry/internal/lifecycle"
	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
)

// syncTimeout bounds the wait for the zone's first complete view of the cluster.
const syncTimeout = time.Minute

// SetupWithManager binds the server's sockets (an address in use fails here, by name), keeps
// the zone from the manager's informers for Services, EndpointSlices and Ingresses, and adds
// the server to the manager. It serves once the zone holds the whole cluster: until then the
// sockets hold the queries, and no pod is told NXDOMAIN for a name that exists. The manager's
// cache must hold every object of the three kinds: a label or namespace restriction there
// would hide names.
func (s *Server) SetupWithManager(ctx context.Context, mgr manager.Manager) error {
	if err := s.Listen(); err != nil {
		return err
	}
	var synced []toolscache.InformerSynced
	type watch struct {
		obj    client.Object
		set    func(client.Object)
		delete func(types.NamespacedName)
	}
	watches := []watch{
		{&corev1.Service{}, func(o client.Object) { s.zone.SetService(o.(*corev1.Service)) }, s.zone.DeleteService},
		{&discoveryv1.EndpointSlice{}, func(o client.Object) { s.zone.SetEndpointSlice(o.(*discoveryv1.EndpointSlice)) }, s.zone.DeleteEndpointSlice},
	}
	if !s.opts.WithoutIngresses {
		watches = append(watches, watch{&netv1alpha1.Ingress{}, func(o client.Object) { s.zone.SetIngress(o.(*netv1alpha1.Ingress)) }, s.zone.DeleteIngress})
	}
	for _, w := range watches {
		inf, err := mgr.GetCache().GetInformer(ctx, w.obj)
		if err != nil {
			return fmt.Errorf("dns: informer for %T: %w", w.obj, err)
		}
		reg, err := inf.AddEventHandler(handler(w.set, w.delete))
		if err != nil {
			return fmt.Errorf("dns: watching %T: %w", w.obj, err)
		}
		synced = append(synced, reg.HasSynced)
	}
	return mgr.Add(lifecycle.OnEveryServer(func(ctx context.Context) error {
		syncCtx, cancel := context.WithTimeout(ctx, syncTimeout)
		defer cancel()
		if !toolscache.WaitForCacheSync(syncCtx.Done(), synced...) {
			if ctx.Err() != nil {
				return nil
			}
			return errors.New("dns: Services, EndpointSlices and Ingresses not synced within " + syncTimeout.String())
		}
		return s.Serve(ctx)
	}))
}

// handler applies an informer's events to the zone.
func handler(set func(client.Object), del func(types.NamespacedName)) toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { apply(obj, set) },
		UpdateFunc: func(_, obj any) { apply(obj, set) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if o, ok := obj.(client.Object); ok {
				del(types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()})
			}
		},
	}
}

func apply(obj any, set func(client.Object)) {
	if o, ok := obj.(client.Object); ok {
		set(o)
	}
}
