package node

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Unsupported lists the fields of pod that a serverless node refuses, by their path, as EKS
// on Fargate refuses them: privileged containers, the host's namespaces, host ports.
func Unsupported(pod *corev1.Pod) []string {
	var fields []string
	if pod.Spec.HostNetwork {
		fields = append(fields, "spec.hostNetwork")
	}
	if pod.Spec.HostPID {
		fields = append(fields, "spec.hostPID")
	}
	if pod.Spec.HostIPC {
		fields = append(fields, "spec.hostIPC")
	}
	check := func(kind string, cs []corev1.Container) {
		for i, c := range cs {
			path := fmt.Sprintf("spec.%s[%d]", kind, i)
			if sc := c.SecurityContext; sc != nil {
				if sc.Privileged != nil && *sc.Privileged {
					fields = append(fields, path+".securityContext.privileged")
				}
				if sc.AllowPrivilegeEscalation != nil && *sc.AllowPrivilegeEscalation {
					fields = append(fields, path+".securityContext.allowPrivilegeEscalation")
				}
			}
			for j, p := range c.Ports {
				if p.HostPort != 0 {
					fields = append(fields, fmt.Sprintf("%s.ports[%d].hostPort", path, j))
				}
				if p.HostIP != "" {
					fields = append(fields, fmt.Sprintf("%s.ports[%d].hostIP", path, j))
				}
			}
		}
	}
	check("initContainers", pod.Spec.InitContainers)
	check("containers", pod.Spec.Containers)
	for i, v := range pod.Spec.Volumes {
		if v.HostPath != nil {
			fields = append(fields, fmt.Sprintf("spec.volumes[%d].hostPath", i))
		}
	}
	return fields
}

// refusal is the message of the event and status of a refused pod.
func refusal(fields []string) string {
	return "Pod not supported on a serverless node: fields not supported: " + strings.Join(fields, ", ")
}
