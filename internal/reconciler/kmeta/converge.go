package kmeta

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/pkg/apis/config"
)

// WithConfig returns ctx carrying the configuration src gives now, so that one reconcile reads
// one configuration however the ConfigMaps change meanwhile; a nil src gives the shipped
// defaults. Reconcilers read it back with config.FromContextOrDefaults.
func WithConfig(ctx context.Context, src config.Source) context.Context {
	if src == nil {
		src = config.Static{}
	}
	return config.ToContext(ctx, src.Load())
}

// Converge is the frame every serving reconciler shares. It reads the object key names into
// obj (gone: nothing to do; being deleted: left to garbage collection), runs body on it, and
// writes the status back when body changed it; onUpdate then sees the status as it was read,
// for events. body's error is returned after the status is written, so a failure is both
// recorded and retried; a failed status write is returned with it.
func Converge[T client.Object, S any](ctx context.Context, c client.Client, key client.ObjectKey, obj T,
	status func(T) *S, body func(context.Context, T) error, onUpdate func(before *S)) error {
	if err := c.Get(ctx, key, obj); err != nil {
		if client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("reading %T %s: %w", obj, key, err)
		}
		return nil
	}
	if !obj.GetDeletionTimestamp().IsZero() {
		return nil
	}
	before := status(obj.DeepCopyObject().(T))
	err := body(ctx, obj)
	if equality.Semantic.DeepEqual(before, status(obj)) {
		return err
	}
	if uerr := c.Status().Update(ctx, obj); uerr != nil {
		return errors.Join(err, fmt.Errorf("updating status of %T %s: %w", obj, key, uerr))
	}
	if onUpdate != nil {
		onUpdate(before)
	}
	return err
}
