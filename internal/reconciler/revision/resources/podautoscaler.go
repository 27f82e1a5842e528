package resources

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/reconciler/kmeta"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// PodAutoscalerName is the name of rev's PodAutoscaler: the revision's own.
func PodAutoscalerName(rev *servingv1.Revision) string { return rev.Name }

// MakePodAutoscaler is what rev asks of its autoscaler: scale rev's Deployment for its
// container concurrency, speaking its protocol, reachable or not as the routes have labelled
// it. It carries rev's labels (as the Deployment does) and annotations, so the autoscaler reads
// the autoscaling.knative.dev settings there; the class is defaultClass (config-autoscaler's
// pod-autoscaler-class; KPA when empty) unless rev names one. The status is the
// autoscaler's and is left empty.
func MakePodAutoscaler(rev *servingv1.Revision, defaultClass string) *pav1alpha1.PodAutoscaler {
	annotations := childAnnotations(rev)
	if annotations[autoscaling.ClassAnnotationKey] == "" {
		if defaultClass == "" {
			defaultClass = autoscaling.KPA
		}
		annotations[autoscaling.ClassAnnotationKey] = defaultClass
	}
	return &pav1alpha1.PodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{
			Name:            PodAutoscalerName(rev),
			Namespace:       rev.Namespace,
			Labels:          PodLabels(rev),
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{kmeta.OwnerRef(rev, rev.GetGroupVersionKind())},
		},
		Spec: pav1alpha1.PodAutoscalerSpec{
			ContainerConcurrency: ptr.Deref(rev.Spec.ContainerConcurrency, 0),
			ScaleTargetRef: corev1.ObjectReference{
				APIVersion: "apps/v1",
				Kind:       "Deployment",
				Name:       DeploymentName(rev),
			},
			Reachability: Reachability(rev),
			ProtocolType: protocol(rev),
		},
	}
}

// Reachability says whether a route sends rev traffic, from the routing state the route
// reconciler labels it with: active is reachable, reserve is not, anything else is not known
// yet (and the autoscaler treats it as reachable).
func Reachability(rev *servingv1.Revision) pav1alpha1.ReachabilityType {
	switch rev.Labels[servingv1.RoutingStateLabelKey] {
	case servingv1.RoutingStateActive:
		return pav1alpha1.ReachabilityReachable
	case servingv1.RoutingStateReserve:
		return pav1alpha1.ReachabilityUnreachable
	default:
		return pav1alpha1.ReachabilityUnknown
	}
}

// protocol is h2c when the serving container's port is named so, HTTP/1 otherwise.
func protocol(rev *servingv1.Revision) pav1alpha1.ProtocolType {
	if userPortName(rev) == contract.UserProtocolH2C {
		return pav1alpha1.ProtocolH2C
	}
	return pav1alpha1.ProtocolHTTP1
}
