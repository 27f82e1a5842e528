package controlplane

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/storage/storagebackend/factory"
	"k8s.io/client-go/tools/cache"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
)

// Without the watch cache the API server serves every watch straight from etcd, and in
// Kubernetes only the cache asks etcd for progress notifications. A watch on a kind nobody
// writes then gets no bookmark: its client keeps the revision of its last event, and when the
// watch ends (every 5 to 10 minutes) it starts again from that revision, so etcd scans its
// history since, or, once a compaction has passed it, the client lists everything again and
// its controllers go over every object. The functions here ask etcd for progress notifications
// on every watch whose client takes bookmarks; the etcd storage turns them into bookmarks (as
// it does for the cache), so quiet watches follow the current revision. etcd sends them every
// etcdProgressNotifyInterval to a watch that had no event.

// bookmarkingStorages makes every storage of the API server's three parts (the built-in APIs,
// custom resources, the aggregator's APIServices) ask etcd for progress notifications on
// watches that take bookmarks. Only for storage without the watch cache: the cache asks for
// them itself and serves its watchers from memory.
func bookmarkingStorages(c *apiserverapp.Config) {
	g := &c.KubeAPIs.ControlPlane.Generic.RESTOptionsGetter
	*g = bookmarkingGetter{*g}
	g = &c.ApiExtensions.GenericConfig.RESTOptionsGetter
	*g = bookmarkingGetter{*g}
	c.ApiExtensions.ExtraConfig.CRDRESTOptionsGetter = bookmarkingGetter{c.ApiExtensions.ExtraConfig.CRDRESTOptionsGetter}
	g = &c.Aggregator.GenericConfig.RESTOptionsGetter
	*g = bookmarkingGetter{*g}
}

// bookmarkingGetter wraps the storage of every resource in bookmarkingStorage.
type bookmarkingGetter struct {
	generic.RESTOptionsGetter
}

func (g bookmarkingGetter) GetRESTOptions(resource schema.GroupResource, example runtime.Object) (generic.RESTOptions, error) {
	opts, err := g.RESTOptionsGetter.GetRESTOptions(resource, example)
	if err != nil {
		return opts, err
	}
	decorate := opts.Decorator
	opts.Decorator = func(config *storagebackend.ConfigForResource, resourcePrefix string,
		keyFunc func(obj runtime.Object) (string, error), newFunc, newListFunc func() runtime.Object,
		attrs storage.AttrFunc, trigger storage.IndexerFuncs, indexers *cache.Indexers,
	) (storage.Interface, factory.DestroyFunc, error) {
		s, destroy, err := decorate(config, resourcePrefix, keyFunc, newFunc, newListFunc, attrs, trigger, indexers)
		if err != nil {
			return nil, nil, err
		}
		return bookmarkingStorage{s}, destroy, nil
	}
	return opts, nil
}

// bookmarkingStorage asks etcd for progress notifications on a watch whose client takes
// bookmarks.
type bookmarkingStorage struct {
	storage.Interface
}

func (s bookmarkingStorage) Watch(ctx context.Context, key string, opts storage.ListOptions) (watch.Interface, error) {
	if opts.Predicate.AllowWatchBookmarks {
		opts.ProgressNotify = true
	}
	return s.Interface.Watch(ctx, key, opts)
}
