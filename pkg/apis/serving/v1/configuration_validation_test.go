package v1

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/pkg/apis"
)

func TestConfigurationValidation(t *testing.T) {
	valid := func(name string) *Configuration {
		c := &Configuration{
			ObjectMeta: metav1.ObjectMeta{Name: "cfg"},
			Spec: ConfigurationSpec{Template: RevisionTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec:       RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: "i"}}}},
			}},
		}
		c.SetDefaults(context.Background())
		return c
	}
	tests := []struct {
		name string
		ctx  context.Context
		cfg  *Configuration
		want string
	}{{
		name: "valid",
		cfg:  valid(""),
	}, {
		name: "chosen name",
		cfg:  valid("cfg-blue"),
	}, {
		name: "chosen name of another parent",
		cfg:  valid("blue"),
		want: "invalid value: blue: spec.template.metadata.name\nthe revision name must start with \"cfg-\"",
	}, {
		name: "changed template, same name",
		ctx:  apis.WithinUpdate(context.Background(), valid("cfg-blue")),
		cfg: func() *Configuration {
			c := valid("cfg-blue")
			c.Spec.Template.Spec.Containers[0].Image = "j"
			return c
		}(),
		want: "invalid value: cfg-blue: spec.template.metadata.name\nthe template changed but its name did not: a changed template needs a new revision name",
	}, {
		name: "changed template annotations, same name",
		ctx:  apis.WithinUpdate(context.Background(), valid("cfg-blue")),
		cfg: func() *Configuration {
			c := valid("cfg-blue")
			c.Spec.Template.Annotations = map[string]string{"x": "y"}
			return c
		}(),
		want: "invalid value: cfg-blue: spec.template.metadata.name\nthe template changed but its name did not: a changed template needs a new revision name",
	}, {
		name: "unchanged on update",
		ctx:  apis.WithinUpdate(context.Background(), valid("cfg-blue")),
		cfg:  valid("cfg-blue"),
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			got := tc.cfg.Validate(ctx).Error()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Validate (-want +got):\n%s", diff)
			}
		})
	}
}
