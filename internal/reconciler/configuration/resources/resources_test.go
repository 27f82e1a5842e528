package resources

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

func configuration(gen int64, templateName string) *servingv1.Configuration {
	return &servingv1.Configuration{
		ObjectMeta: metav1.ObjectMeta{
			Name: "hello", Namespace: "ns", UID: "cfg-uid", Generation: gen,
			Labels:      map[string]string{servingv1.ServiceLabelKey: "hello", servingv1.ServiceUIDLabelKey: "svc-uid", "unrelated": "x"},
			Annotations: map[string]string{servingv1.CreatorAnnotation: "alice"},
		},
		Spec: servingv1.ConfigurationSpec{Template: servingv1.RevisionTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Name: templateName, Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"autoscaling.knative.dev/min-scale": "1"}},
			Spec:       servingv1.RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: "img"}}}},
		}},
	}
}

func TestRevisionName(t *testing.T) {
	for _, tt := range []struct {
		gen  int64
		tmpl string
		want string
	}{{1, "", "hello-00001"}, {42, "", "hello-00042"}, {123456, "", "hello-123456"}, {3, "hello-blue", "hello-blue"}} {
		if got := RevisionName(configuration(tt.gen, tt.tmpl)); got != tt.want {
			t.Errorf("RevisionName(gen %d, template %q) = %q, want %q", tt.gen, tt.tmpl, got, tt.want)
		}
	}
}

func TestMakeRevision(t *testing.T) {
	cfg := configuration(2, "")
	rev := MakeRevision(cfg)
	wantLabels := map[string]string{
		"app":                                     "web",
		servingv1.ConfigurationLabelKey:           "hello",
		servingv1.ConfigurationUIDLabelKey:        "cfg-uid",
		servingv1.ConfigurationGenerationLabelKey: "2",
		servingv1.ServiceLabelKey:                 "hello",
		servingv1.ServiceUIDLabelKey:              "svc-uid",
	}
	if diff := cmp.Diff(wantLabels, rev.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	wantAnn := map[string]string{"autoscaling.knative.dev/min-scale": "1", servingv1.CreatorAnnotation: "alice"}
	if diff := cmp.Diff(wantAnn, rev.Annotations); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
	if rev.Name != "hello-00002" || !metav1.IsControlledBy(rev, cfg) {
		t.Errorf("revision %s controlled=%v, want hello-00002 controlled by the configuration", rev.Name, metav1.IsControlledBy(rev, cfg))
	}
	if diff := cmp.Diff(cfg.Spec.Template.Spec, rev.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
}
