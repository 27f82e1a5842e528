// Package resources builds the Revision a Configuration stamps from its template.
package resources

import (
	"fmt"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/internal/reconciler/kmeta"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// RevisionName is the name of the Revision for the Configuration's current generation: the
// template's own name when the user chose one, else <configuration>-<generation, 5 digits>.
func RevisionName(cfg *servingv1.Configuration) string {
	if n := cfg.Spec.Template.Name; n != "" {
		return n
	}
	return fmt.Sprintf("%s-%05d", cfg.Name, cfg.Generation)
}

// MakeRevision is the immutable Revision of the Configuration's current template.
func MakeRevision(cfg *servingv1.Configuration) *servingv1.Revision {
	tmpl := cfg.Spec.Template
	labels := kmeta.UnionMaps(tmpl.Labels, map[string]string{
		servingv1.ConfigurationLabelKey:           cfg.Name,
		servingv1.ConfigurationUIDLabelKey:        string(cfg.UID),
		servingv1.ConfigurationGenerationLabelKey: strconv.FormatInt(cfg.Generation, 10),
	})
	// A Configuration owned by a Service hands the Service's identity down too.
	for _, k := range []string{servingv1.ServiceLabelKey, servingv1.ServiceUIDLabelKey} {
		if v, ok := cfg.Labels[k]; ok {
			labels[k] = v
		}
	}
	annotations := kmeta.PropagatedAnnotations(tmpl.Annotations)
	for _, k := range []string{servingv1.CreatorAnnotation, servingv1.UpdaterAnnotation} {
		if v, ok := cfg.Annotations[k]; ok {
			annotations[k] = v
		}
	}
	return &servingv1.Revision{
		ObjectMeta: metav1.ObjectMeta{
			Name:            RevisionName(cfg),
			Namespace:       cfg.Namespace,
			Labels:          labels,
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{kmeta.OwnerRef(cfg, cfg.GetGroupVersionKind())},
		},
		Spec: *tmpl.Spec.DeepCopy(),
	}
}
