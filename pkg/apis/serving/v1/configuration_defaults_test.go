package v1

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestConfigurationDefaults(t *testing.T) {
	c := &Configuration{Spec: ConfigurationSpec{Template: RevisionTemplateSpec{Spec: RevisionSpec{
		PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: "i"}}},
	}}}}
	c.SetDefaults(context.Background())
	spec := c.Spec.Template.Spec
	if spec.Containers[0].Name != "user-container" || *spec.TimeoutSeconds != 300 || *spec.ContainerConcurrency != 0 {
		t.Errorf("template not defaulted: %+v", spec)
	}
}
