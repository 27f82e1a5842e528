package scheduler

import (
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gantry-run/gantry/internal/node"
	"github.com/gantry-run/gantry/internal/sandbox"
	"github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// Labels and annotations of a serverless node that only this package reads.
const (
	// podUIDLabel names the pod a serverless node was made for, so that a node whose pod is
	// gone is found and removed, and a node made for a pod before a crash is taken again.
	podUIDLabel = v1alpha1.GroupName + "/pod-uid"
	// instanceType is the node.kubernetes.io/instance-type of a serverless node.
	instanceType = "gantry-serverless"
)

// MakeNode is the serverless node of pod at ip, provisioned size: a node made from the
// agent's (its addresses, kubelet endpoint, system info and conditions: the agent serves
// it), named after ip, labelled with the compute type and the pod's profile, tainted so no
// other pod lands there, with capacity and allocatable the size and room for one pod.
func MakeNode(agent node.NodeInfo, pod *corev1.Pod, ip netip.Addr, size node.ServerlessSize, now time.Time) *corev1.Node {
	info := agent
	info.Name = node.ServerlessNodeName(ip)
	info.DiskPressure = false
	// Not the agent's range: node IPAM would release it with the serverless node.
	info.PodCIDR = ""
	n := node.MakeNode(info, now)
	n.Labels["node.kubernetes.io/instance-type"] = instanceType
	n.Labels[v1alpha1.ComputeTypeTaintKey] = v1alpha1.ComputeTypeTaintValue
	n.Labels[podUIDLabel] = string(pod.UID)
	if p := pod.Labels[v1alpha1.ProfileLabel]; p != "" && len(validation.IsValidLabelValue(p)) == 0 {
		n.Labels[v1alpha1.ProfileLabel] = p
	}
	n.Annotations = map[string]string{
		v1alpha1.CapacityProvisionedAnnotation: size.Capacity.String(),
		v1alpha1.NodePodAnnotation:             pod.Namespace + "/" + pod.Name,
	}
	storage := size.EphemeralStorageBytes
	if storage == 0 {
		storage = sandbox.DefaultEphemeralStorageBytes
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewMilliQuantity(size.Capacity.MilliCPU, resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(size.Capacity.MemoryBytes(), resource.BinarySI),
		corev1.ResourceEphemeralStorage: *resource.NewQuantity(storage, resource.BinarySI),
		corev1.ResourcePods:             *resource.NewQuantity(1, resource.DecimalSI),
	}
	n.Status.Capacity, n.Status.Allocatable = capacity, capacity.DeepCopy()
	n.Spec.Taints = []corev1.Taint{{Key: v1alpha1.ComputeTypeTaintKey, Value: v1alpha1.ComputeTypeTaintValue, Effect: corev1.TaintEffectNoSchedule}}
	return n
}
