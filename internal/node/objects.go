package node

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// A node's identity may read only the ConfigMaps and Secrets its pods refer to (the Node
// authorizer's rule), one by name: it cannot list or watch them all. So the node reads each
// when a pod needs it and keeps it objectTTL, as the kubelet's TTL-based object manager
// does, instead of an informer over every namespace.
const (
	objectTTL = 5 * time.Second
	// objectGetTimeout bounds one read.
	objectGetTimeout = 10 * time.Second
	// maxCachedObjects bounds the cache; a full cache is emptied.
	maxCachedObjects = 4096
)

// objectCache reads objects of one kind by namespace and name, keeping each a while. Only
// objects found are kept: one created after a miss is seen on the next read.
type objectCache[T any] struct {
	get   func(ctx context.Context, ns, name string) (T, error)
	clock clock.PassiveClock
	kept  *ttlCache[T]
}

func newObjectCache[T any](clk clock.PassiveClock, get func(ctx context.Context, ns, name string) (T, error)) *objectCache[T] {
	return &objectCache[T]{get: get, clock: clk, kept: newTTLCache[T](maxCachedObjects)}
}

func (c *objectCache[T]) read(ns, name string) (T, error) {
	key := ns + "/" + name
	now := c.clock.Now()
	if obj, ok := c.kept.get(key, now); ok {
		return obj, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), objectGetTimeout)
	defer cancel()
	obj, err := c.get(ctx, ns, name)
	if err != nil {
		return obj, err
	}
	c.kept.put(key, obj, now.Add(objectTTL))
	return obj, nil
}

// configMapGetter and secretGetter read one object by name.
func configMapGetter(client kubernetes.Interface) func(ctx context.Context, ns, name string) (*corev1.ConfigMap, error) {
	return func(ctx context.Context, ns, name string) (*corev1.ConfigMap, error) {
		return client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
	}
}

func serviceGetter(client kubernetes.Interface) func(ctx context.Context, ns, name string) (*corev1.Service, error) {
	return func(ctx context.Context, ns, name string) (*corev1.Service, error) {
		return client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	}
}

func secretGetter(client kubernetes.Interface) func(ctx context.Context, ns, name string) (*corev1.Secret, error) {
	return func(ctx context.Context, ns, name string) (*corev1.Secret, error) {
		return client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	}
}
