// Package resources builds the children of a Service, a Configuration and a Route of the same
// name, as pure functions of the Service.
package resources

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/reconciler/kmeta"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// childMeta is the metadata a Service gives both its children.
func childMeta(svc *servingv1.Service) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:      svc.Name,
		Namespace: svc.Namespace,
		Labels: kmeta.UnionMaps(svc.Labels, map[string]string{
			servingv1.ServiceLabelKey:    svc.Name,
			servingv1.ServiceUIDLabelKey: string(svc.UID),
		}),
		Annotations:     kmeta.PropagatedAnnotations(svc.Annotations),
		OwnerReferences: []metav1.OwnerReference{kmeta.OwnerRef(svc, svc.GetGroupVersionKind())},
	}
}

// MakeConfiguration is the Configuration a Service owns: its template, under its name.
func MakeConfiguration(svc *servingv1.Service) *servingv1.Configuration {
	return &servingv1.Configuration{
		ObjectMeta: childMeta(svc),
		Spec:       *svc.Spec.ConfigurationSpec.DeepCopy(),
	}
}

// MakeRoute is the Route a Service owns: its traffic, where a target that follows the latest
// revision names the Service's Configuration.
func MakeRoute(svc *servingv1.Service) *servingv1.Route {
	route := &servingv1.Route{ObjectMeta: childMeta(svc)}
	for _, t := range svc.Spec.Traffic {
		t := *t.DeepCopy()
		if t.RevisionName == "" && ptr.Deref(t.LatestRevision, true) && t.ConfigurationName == "" {
			t.ConfigurationName = svc.Name
		}
		route.Spec.Traffic = append(route.Spec.Traffic, t)
	}
	return route
}
