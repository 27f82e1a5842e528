package resources

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

func TestMakePodAutoscaler(t *testing.T) {
	rev := revision()
	rev.Labels[servingv1.RoutingStateLabelKey] = servingv1.RoutingStateActive
	rev.Annotations = map[string]string{
		"autoscaling.knative.dev/min-scale":                "2",
		"autoscaling.knative.dev/window":                   "10s",
		"example.com/team":                                 "web",
		"kubectl.kubernetes.io/last-applied-configuration": "{}",
		servingv1.RoutesAnnotationKey:                      "hello",
		servingv1.RoutingStateModifiedAnnotationKey:        "2026-11-28T10:00:00Z",
	}
	want := &pav1alpha1.PodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{
			Name: "hello-00001", Namespace: "ns",
			Labels: map[string]string{
				servingv1.ConfigurationLabelKey: "hello", servingv1.ServiceLabelKey: "hello",
				servingv1.RevisionLabelKey: "hello-00001", servingv1.RevisionUID: "rev-uid", "app": "hello-00001",
			},
			Annotations: map[string]string{
				"autoscaling.knative.dev/min-scale": "2",
				"autoscaling.knative.dev/window":    "10s",
				"autoscaling.knative.dev/class":     "kpa.autoscaling.knative.dev",
				"example.com/team":                  "web",
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "serving.knative.dev/v1", Kind: "Revision", Name: "hello-00001", UID: "rev-uid",
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}},
		},
		Spec: pav1alpha1.PodAutoscalerSpec{
			ContainerConcurrency: 5,
			ScaleTargetRef:       corev1.ObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "hello-00001-deployment"},
			Reachability:         pav1alpha1.ReachabilityReachable,
			ProtocolType:         pav1alpha1.ProtocolHTTP1,
		},
	}
	before := rev.DeepCopy()
	if diff := cmp.Diff(want, MakePodAutoscaler(rev, "")); diff != "" {
		t.Errorf("MakePodAutoscaler (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, rev); diff != "" {
		t.Errorf("MakePodAutoscaler changed the revision (-before +after):\n%s", diff)
	}
	if got := MakePodAutoscaler(rev, "").Spec.ScaleTargetRef.Name; got != MakeDeployment(rev, config.NewConfig()).Name {
		t.Errorf("scaleTargetRef.name = %q, want the Deployment's name", got)
	}
}

func TestMakePodAutoscalerSpec(t *testing.T) {
	for _, tt := range []struct {
		name   string
		mutate func(*servingv1.Revision)
		want   pav1alpha1.PodAutoscalerSpec
	}{{
		name:   "no routing state yet: reachability unknown",
		mutate: func(*servingv1.Revision) {},
		want:   pav1alpha1.PodAutoscalerSpec{ContainerConcurrency: 5, ProtocolType: pav1alpha1.ProtocolHTTP1},
	}, {
		name:   "routed to: reachable",
		mutate: func(r *servingv1.Revision) { r.Labels[servingv1.RoutingStateLabelKey] = servingv1.RoutingStateActive },
		want:   pav1alpha1.PodAutoscalerSpec{ContainerConcurrency: 5, ProtocolType: pav1alpha1.ProtocolHTTP1, Reachability: pav1alpha1.ReachabilityReachable},
	}, {
		name:   "no longer routed to: unreachable",
		mutate: func(r *servingv1.Revision) { r.Labels[servingv1.RoutingStateLabelKey] = servingv1.RoutingStateReserve },
		want:   pav1alpha1.PodAutoscalerSpec{ContainerConcurrency: 5, ProtocolType: pav1alpha1.ProtocolHTTP1, Reachability: pav1alpha1.ReachabilityUnreachable},
	}, {
		name:   "pending: unknown",
		mutate: func(r *servingv1.Revision) { r.Labels[servingv1.RoutingStateLabelKey] = servingv1.RoutingStatePending },
		want:   pav1alpha1.PodAutoscalerSpec{ContainerConcurrency: 5, ProtocolType: pav1alpha1.ProtocolHTTP1},
	}, {
		name:   "a port named h2c",
		mutate: func(r *servingv1.Revision) { r.Spec.Containers[0].Ports[0].Name = "h2c" },
		want:   pav1alpha1.PodAutoscalerSpec{ContainerConcurrency: 5, ProtocolType: pav1alpha1.ProtocolH2C},
	}, {
		name:   "a port named http1",
		mutate: func(r *servingv1.Revision) { r.Spec.Containers[0].Ports[0].Name = "http1" },
		want:   pav1alpha1.PodAutoscalerSpec{ContainerConcurrency: 5, ProtocolType: pav1alpha1.ProtocolHTTP1},
	}, {
		name:   "no container concurrency: unlimited",
		mutate: func(r *servingv1.Revision) { r.Spec.ContainerConcurrency = nil },
		want:   pav1alpha1.PodAutoscalerSpec{ProtocolType: pav1alpha1.ProtocolHTTP1},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			rev := revision()
			tt.mutate(rev)
			tt.want.ScaleTargetRef = corev1.ObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "hello-00001-deployment"}
			if diff := cmp.Diff(tt.want, MakePodAutoscaler(rev, "").Spec); diff != "" {
				t.Errorf("spec (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMakePodAutoscalerKeepsTheClassItIsGiven(t *testing.T) {
	rev := revision()
	rev.Annotations = map[string]string{"autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev", "autoscaling.knative.dev/metric": "cpu"}
	pa := MakePodAutoscaler(rev, "")
	if got := pa.Class(); got != "hpa.autoscaling.knative.dev" {
		t.Errorf("class = %q, want the revision's hpa.autoscaling.knative.dev", got)
	}
	if got := pa.Annotations["autoscaling.knative.dev/metric"]; got != "cpu" {
		t.Errorf("metric annotation = %q, want the revision's cpu", got)
	}
}

// TestRoutingLeavesThePodsAlone: the route reconciler's label and annotations on a revision
// reach none of its Deployment's metadata, so routing a revision never rolls its pods.
func TestRoutingLeavesThePodsAlone(t *testing.T) {
	plain := revision()
	routed := revision()
	routed.Labels[servingv1.RoutingStateLabelKey] = servingv1.RoutingStateReserve
	routed.Annotations = map[string]string{
		servingv1.RoutesAnnotationKey:               "hello",
		servingv1.RoutingStateModifiedAnnotationKey: "2026-11-28T10:00:00Z",
	}
	want, got := MakeDeployment(plain, config.NewConfig()), MakeDeployment(routed, config.NewConfig())
	if diff := cmp.Diff(want.ObjectMeta, got.ObjectMeta); diff != "" {
		t.Errorf("Deployment metadata (-unrouted +routed):\n%s", diff)
	}
	if diff := cmp.Diff(want.Spec.Template.ObjectMeta, got.Spec.Template.ObjectMeta); diff != "" {
		t.Errorf("pod template metadata (-unrouted +routed):\n%s", diff)
	}
	if diff := cmp.Diff(MakePrivateService(plain).ObjectMeta, MakePrivateService(routed).ObjectMeta); diff != "" {
		t.Errorf("Service metadata (-unrouted +routed):\n%s", diff)
	}
}

func TestMakePodAutoscalerDefaultClass(t *testing.T) {
	rev := &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Name: "r-00001", Namespace: "ns"}}
	for def, want := range map[string]string{"": autoscaling.KPA, autoscaling.HPA: autoscaling.HPA} {
		if got := MakePodAutoscaler(rev, def).Class(); got != want {
			t.Errorf("default %q: class %q, want %q", def, got, want)
		}
	}
	rev.Annotations = map[string]string{autoscaling.ClassAnnotationKey: autoscaling.KPA}
	if got := MakePodAutoscaler(rev, autoscaling.HPA).Class(); got != autoscaling.KPA {
		t.Errorf("a revision that names KPA got %q under an HPA default", got)
	}
}
