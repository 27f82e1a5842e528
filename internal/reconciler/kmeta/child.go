package kmeta

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ErrNotOwned is returned by ReconcileChild for a child that exists but belongs to another
// owner: it is left alone.
var ErrNotOwned = errors.New("exists and is not owned by this object")

// ReconcileChild makes the child named like want exist and match it: it creates a missing
// one, refuses one another object controls, and otherwise copies want onto the existing one
// with apply when same says they differ. same only compares: it must not change its
// arguments. cur receives the child as it is stored; created reports a create. A read error
// other than NotFound is returned, never taken for a missing child.
func ReconcileChild[T client.Object](ctx context.Context, c client.Client, owner metav1.Object, want, cur T,
	same func(cur, want T) bool, apply func(cur, want T)) (created bool, err error) {
	err = c.Get(ctx, client.ObjectKeyFromObject(want), cur)
	switch {
	case apierrors.IsNotFound(err):
		if err := c.Create(ctx, want); err != nil {
			return false, fmt.Errorf("creating %T %s/%s: %w", want, want.GetNamespace(), want.GetName(), err)
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("reading %T %s/%s: %w", want, want.GetNamespace(), want.GetName(), err)
	case !metav1.IsControlledBy(cur, owner):
		return false, fmt.Errorf("%T %s/%s %w %s", cur, cur.GetNamespace(), cur.GetName(), ErrNotOwned, owner.GetName())
	case same(cur, want):
		return false, nil
	}
	apply(cur, want)
	if err := c.Update(ctx, cur); err != nil {
		return false, fmt.Errorf("updating %T %s/%s: %w", cur, cur.GetNamespace(), cur.GetName(), err)
	}
	return false, nil
}
