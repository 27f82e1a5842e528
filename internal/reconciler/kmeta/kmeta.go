// Package kmeta holds what the serving reconcilers share: the metadata objects hand down to
// their children (owner references, the labels and annotations Knative propagates), the
// convergence of one child (ReconcileChild), and the read-reconcile-write-status frame
// (Converge).
package kmeta

import (
	"maps"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

// lastApplied is kubectl's record of the user's manifest; it describes the parent only.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// OwnerRef makes obj (of kind gvk) the controller of a child: deleting obj deletes the child.
func OwnerRef(obj metav1.Object, gvk schema.GroupVersionKind) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion:         gvk.GroupVersion().String(),
		Kind:               gvk.Kind,
		Name:               obj.GetName(),
		UID:                obj.GetUID(),
		Controller:         ptr.To(true),
		BlockOwnerDeletion: ptr.To(true),
	}
}

// UnionMaps returns a new map with the entries of all ms; later ones win.
func UnionMaps(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		maps.Copy(out, m)
	}
	return out
}

// FilterMap returns m without the keys drop reports.
func FilterMap(m map[string]string, drop func(string) bool) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if !drop(k) {
			out[k] = v
		}
	}
	return out
}

// PropagatedAnnotations are the annotations a parent hands to a child: all but kubectl's
// last-applied record.
func PropagatedAnnotations(m map[string]string) map[string]string {
	return FilterMap(m, func(k string) bool { return k == lastApplied })
}
