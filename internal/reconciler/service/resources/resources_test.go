package resources

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

func service() *servingv1.Service {
	return &servingv1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name: "hello", Namespace: "ns", UID: "uid-1",
			Labels:      map[string]string{"team": "a"},
			Annotations: map[string]string{"note": "x", "kubectl.kubernetes.io/last-applied-configuration": "{}"},
		},
		Spec: servingv1.ServiceSpec{
			ConfigurationSpec: servingv1.ConfigurationSpec{Template: servingv1.RevisionTemplateSpec{
				Spec: servingv1.RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: "img"}}}},
			}},
			RouteSpec: servingv1.RouteSpec{Traffic: []servingv1.TrafficTarget{
				{LatestRevision: ptr.To(true), Percent: ptr.To[int64](80)},
				{RevisionName: "hello-00001", Percent: ptr.To[int64](20), Tag: "old"},
			}},
		},
	}
}

func TestMakeConfiguration(t *testing.T) {
	svc := service()
	cfg := MakeConfiguration(svc)
	if cfg.Name != "hello" || cfg.Namespace != "ns" {
		t.Errorf("name = %s/%s, want ns/hello", cfg.Namespace, cfg.Name)
	}
	wantLabels := map[string]string{"team": "a", servingv1.ServiceLabelKey: "hello", servingv1.ServiceUIDLabelKey: "uid-1"}
	if diff := cmp.Diff(wantLabels, cfg.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"note": "x"}, cfg.Annotations); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(svc.Spec.ConfigurationSpec, cfg.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if !metav1.IsControlledBy(cfg, svc) {
		t.Error("configuration is not controlled by the service")
	}
	cfg.Spec.Template.Spec.Containers[0].Image = "changed"
	if svc.Spec.Template.Spec.Containers[0].Image != "img" {
		t.Error("MakeConfiguration shares the service's spec instead of copying it")
	}
}

func TestMakeRouteNamesTheConfigurationForLatest(t *testing.T) {
	route := MakeRoute(service())
	want := []servingv1.TrafficTarget{
		{ConfigurationName: "hello", LatestRevision: ptr.To(true), Percent: ptr.To[int64](80)},
		{RevisionName: "hello-00001", Percent: ptr.To[int64](20), Tag: "old"},
	}
	if diff := cmp.Diff(want, route.Spec.Traffic); diff != "" {
		t.Errorf("traffic (-want +got):\n%s", diff)
	}
}
