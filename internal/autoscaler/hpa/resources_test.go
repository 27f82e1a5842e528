package hpa

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	"github.com/gantry-run/gantry/pkg/apis/config"
)

func pa(annotations map[string]string) *pav1alpha1.PodAutoscaler {
	a := map[string]string{autoscaling.ClassAnnotationKey: autoscaling.HPA}
	for k, v := range annotations {
		a[k] = v
	}
	return &pav1alpha1.PodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "hello-00001", Namespace: "ns", UID: "pa-uid", Annotations: a,
			Labels: map[string]string{"serving.knative.dev/revision": "hello-00001"}},
		Spec: pav1alpha1.PodAutoscalerSpec{ScaleTargetRef: corev1.ObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "hello-00001-deployment"}},
	}
}

func cpu(percent int32) []autoscalingv2.MetricSpec {
	return []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
		Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To(percent)},
	}}}
}

func TestMakeHPASpec(t *testing.T) {
	mib := func(n int64) *resource.Quantity { return resource.NewQuantity(n<<20, resource.BinarySI) }
	tests := []struct {
		name     string
		ann      map[string]string
		as       func(*config.Autoscaler)
		min, max int32
		metrics  []autoscalingv2.MetricSpec
	}{
		{name: "defaults: one pod at least, no bound, 80 % CPU", min: 1, max: math.MaxInt32, metrics: cpu(80)},
		{name: "cpu target in percent, rounded up", ann: map[string]string{autoscaling.MetricAnnotationKey: "cpu", autoscaling.TargetAnnotationKey: "49.5"},
			min: 1, max: math.MaxInt32, metrics: cpu(50)},
		{name: "min-scale 0 is 1: an HPA cannot go to zero", ann: map[string]string{autoscaling.MinScaleAnnotationKey: "0", autoscaling.MaxScaleAnnotationKey: "4"},
			min: 1, max: 4, metrics: cpu(80)},
		{name: "bounds from the annotations, old spellings too", ann: map[string]string{"autoscaling.knative.dev/minScale": "2", autoscaling.MaxScaleAnnotationKey: "5"},
			min: 2, max: 5, metrics: cpu(80)},
		{name: "bounds from config-autoscaler", as: func(a *config.Autoscaler) { a.MinScale, a.MaxScale = 3, 7 },
			min: 3, max: 7, metrics: cpu(80)},
		{name: "memory target in MiB per pod", ann: map[string]string{autoscaling.MetricAnnotationKey: "memory", autoscaling.TargetAnnotationKey: "200"},
			min: 1, max: math.MaxInt32, metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceMemory, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: mib(200)},
			}}}},
		{name: "memory without a target: Kubernetes' default", ann: map[string]string{autoscaling.MetricAnnotationKey: "memory"},
			min: 1, max: math.MaxInt32},
		{name: "a custom metric per pod", ann: map[string]string{autoscaling.MetricAnnotationKey: "queue-depth", autoscaling.TargetAnnotationKey: "2.5"},
			min: 1, max: math.MaxInt32, metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.PodsMetricSourceType, Pods: &autoscalingv2.PodsMetricSource{
				Metric: autoscalingv2.MetricIdentifier{Name: "queue-depth"},
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: resource.NewMilliQuantity(2500, resource.DecimalSI)},
			}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as := config.NewAutoscaler()
			if tt.as != nil {
				tt.as(as)
			}
			p := pa(tt.ann)
			got, err := MakeHPA(p, as)
			if err != nil {
				t.Fatal(err)
			}
			want := autoscalingv2.HorizontalPodAutoscalerSpec{
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "hello-00001-deployment"},
				MinReplicas:    ptr.To(tt.min),
				MaxReplicas:    tt.max,
				Metrics:        tt.metrics,
			}
			if diff := cmp.Diff(want, got.Spec); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
			if owner := metav1.GetControllerOf(got); owner == nil || owner.UID != "pa-uid" || owner.Kind != "PodAutoscaler" {
				t.Errorf("owner %+v, want the PodAutoscaler as controller", owner)
			}
			if got.Name != p.Name || got.Namespace != p.Namespace || got.Labels["serving.knative.dev/revision"] != "hello-00001" {
				t.Errorf("metadata %+v, want the PodAutoscaler's name, namespace and labels", got.ObjectMeta)
			}
		})
	}
}

func TestMakeHPARefusesBadAnnotations(t *testing.T) {
	for _, ann := range []map[string]string{
		{autoscaling.MinScaleAnnotationKey: "-1"},
		{autoscaling.MaxScaleAnnotationKey: "many"},
		{autoscaling.TargetAnnotationKey: "0"},
	} {
		if _, err := MakeHPA(pa(ann), config.NewAutoscaler()); err == nil {
			t.Errorf("MakeHPA with %v: no error", ann)
		}
	}
}

func TestSpecMatchesAllowsTheAPIServersDefaults(t *testing.T) {
	want, err := MakeHPA(pa(map[string]string{autoscaling.MetricAnnotationKey: "memory"}), config.NewAutoscaler())
	if err != nil {
		t.Fatal(err)
	}
	stored := want.Spec.DeepCopy()
	stored.Metrics = cpu(80)
	stored.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](300)}}
	if !specMatches(*stored, want.Spec) {
		t.Error("a stored spec with the API server's defaults does not match the one built")
	}
	stored.MaxReplicas = 3
	if specMatches(*stored, want.Spec) {
		t.Error("a stored spec with another max-scale matches")
	}
	cpuWant, err := MakeHPA(pa(map[string]string{autoscaling.TargetAnnotationKey: "60"}), config.NewAutoscaler())
	if err != nil {
		t.Fatal(err)
	}
	stored = cpuWant.Spec.DeepCopy()
	stored.Metrics = cpu(80)
	if specMatches(*stored, cpuWant.Spec) {
		t.Error("a stored spec with another CPU target matches")
	}
}
