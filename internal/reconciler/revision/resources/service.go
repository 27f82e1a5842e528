package resources

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/reconciler/kmeta"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// PrivateServiceName is the name of the Service that reaches rev's pods directly.
func PrivateServiceName(rev *servingv1.Revision) string { return rev.Name + "-private" }

// MakePrivateService is the ClusterIP Service in front of rev's queue-proxies: its
// EndpointSlices are the pods the gateway and activator balance over.
func MakePrivateService(rev *servingv1.Revision) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:            PrivateServiceName(rev),
			Namespace:       rev.Namespace,
			Labels:          PodLabels(rev),
			Annotations:     childAnnotations(rev),
			OwnerReferences: []metav1.OwnerReference{kmeta.OwnerRef(rev, rev.GetGroupVersionKind())},
		},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selector(rev),
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromInt32(contract.HTTPPort)},
				{Name: contract.AdminPortName, Port: contract.AdminPort, TargetPort: intstr.FromInt32(contract.AdminPort)},
				{Name: contract.MetricsPortName, Port: contract.MetricsPort, TargetPort: intstr.FromInt32(contract.MetricsPort)},
			},
		},
	}
}
