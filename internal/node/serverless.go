package node

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// ServerlessNodeName is the name of the serverless node of the pod at ip, as Fargate names
// its nodes: serverless-ip-10-42-128-5.
func ServerlessNodeName(ip netip.Addr) string {
	return v1alpha1.NodeNamePrefix + strings.ReplaceAll(ip.Unmap().String(), ".", "-")
}

// ServerlessNodeIP is the address a serverless node's name carries; false when name is not
// a serverless node's.
func ServerlessNodeIP(name string) (netip.Addr, bool) {
	rest, ok := strings.CutPrefix(name, v1alpha1.NodeNamePrefix)
	if !ok {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(strings.ReplaceAll(rest, "-", "."))
	if err != nil || !ip.Is4() || ServerlessNodeName(ip) != name {
		return netip.Addr{}, false
	}
	return ip, true
}

// ServerlessSize is what a serverless pod was provisioned, read from its annotations.
type ServerlessSize struct {
	Capacity v1alpha1.Capacity
	// EphemeralStorageBytes is the provisioned ephemeral storage; 0 when the pod does not
	// carry the annotation (the node's default then applies).
	EphemeralStorageBytes int64
}

// ProvisionedSize reads the size the admission webhook gave pod. Its errors name the
// annotation.
func ProvisionedSize(pod *corev1.Pod) (ServerlessSize, error) {
	v, ok := pod.Annotations[v1alpha1.CapacityProvisionedAnnotation]
	if !ok {
		return ServerlessSize{}, fmt.Errorf("metadata.annotations[%s]: missing: a serverless pod carries its provisioned size, e.g. %q",
			v1alpha1.CapacityProvisionedAnnotation, v1alpha1.Capacity{MilliCPU: 250, MemoryMiB: 512}.String())
	}
	c, err := v1alpha1.ParseCapacity(v)
	if err != nil {
		return ServerlessSize{}, fmt.Errorf("metadata.annotations[%s]: %w", v1alpha1.CapacityProvisionedAnnotation, err)
	}
	size := ServerlessSize{Capacity: c}
	if v, ok := pod.Annotations[v1alpha1.EphemeralStorageProvisionedAnnotation]; ok {
		q, err := resource.ParseQuantity(v)
		if err != nil || q.Sign() <= 0 {
			return ServerlessSize{}, fmt.Errorf("metadata.annotations[%s]: %q is not a positive quantity such as 20Gi",
				v1alpha1.EphemeralStorageProvisionedAnnotation, v)
		}
		size.EphemeralStorageBytes = q.Value()
	}
	return size, nil
}

// serverlessRefusal says why the node cannot run pod on its serverless node, or "".
func serverlessRefusal(pod *corev1.Pod) string {
	if !onServerlessNode(pod) {
		return ""
	}
	if _, ok := ServerlessNodeIP(pod.Spec.NodeName); !ok {
		return fmt.Sprintf("spec.nodeName: %q is not a serverless node's name (%s<address with dashes>)", pod.Spec.NodeName, v1alpha1.NodeNamePrefix)
	}
	if _, err := ProvisionedSize(pod); err != nil {
		return err.Error()
	}
	return ""
}

// ServesServerlessNode says whether the node agent whose serverless nodes take their
// addresses from r serves the serverless node name: its address lies in r. Every machine of a
// cluster has a pod range of its own, so each serverless node is one machine's, and only
// that machine's agent runs its pod, renews its lease and remakes it when it is gone.
func ServesServerlessNode(r netip.Prefix, name string) bool {
	ip, ok := ServerlessNodeIP(name)
	return ok && r.Contains(ip)
}
