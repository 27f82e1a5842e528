package node

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/sandbox"
)

// addableCapabilities are the capabilities a container may add: the default set (back after
// a drop) and, as EKS on Fargate allows, CAP_SYS_PTRACE for debuggers and profilers. The
// others would reach past the pod (SYS_ADMIN, NET_ADMIN, SYS_MODULE, …): the pod is refused.
var addableCapabilities = append(slices.Clone(sandbox.DefaultCapabilities), "CAP_SYS_PTRACE")

// capabilityName is a Kubernetes capability ("NET_RAW", or "CAP_NET_RAW") as the runtime
// names it.
func capabilityName(c corev1.Capability) string {
	s := strings.ToUpper(string(c))
	if s == "ALL" || strings.HasPrefix(s, "CAP_") {
		return s
	}
	return "CAP_" + s
}

// containerPath is the field path of the container called name in pod, for messages.
func containerPath(pod *corev1.Pod, name string) string {
	for i, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return fmt.Sprintf("spec.initContainers[%d]", i)
		}
	}
	for i, c := range pod.Spec.Containers {
		if c.Name == name {
			return fmt.Sprintf("spec.containers[%d]", i)
		}
	}
	return "container " + name
}

// capabilities is the set container c holds: the default set, less ALL when drop names it,
// plus what add names, less what drop names, as containerd applies them. An add beyond
// addableCapabilities is an error naming the field.
func capabilities(caps *corev1.Capabilities, path string) ([]string, error) {
	out := slices.Clone(sandbox.DefaultCapabilities)
	if caps == nil {
		return out, nil
	}
	for _, d := range caps.Drop {
		if capabilityName(d) == "ALL" {
			out = []string{}
		}
	}
	for i, a := range caps.Add {
		name := capabilityName(a)
		if !slices.Contains(addableCapabilities, name) {
			return nil, fmt.Errorf("%s.securityContext.capabilities.add[%d]: %s may not be added on a serverless node (allowed: the default set and SYS_PTRACE)", path, i, a)
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	for _, d := range caps.Drop {
		name := capabilityName(d)
		out = slices.DeleteFunc(out, func(c string) bool { return c == name })
	}
	return out, nil
}

// seccompUnconfined reports whether the container runs without a seccomp filter: only when
// its profile (or the pod's) says Unconfined and the server allows it. RuntimeDefault, or no
// profile, is the default allow-list; Localhost profiles are refused.
func seccompUnconfined(pod *corev1.Pod, c *corev1.Container, path string, allowUnconfined bool) (bool, error) {
	var p *corev1.SeccompProfile
	field := "spec.securityContext.seccompProfile"
	if sc := pod.Spec.SecurityContext; sc != nil && sc.SeccompProfile != nil {
		p = sc.SeccompProfile
	}
	if c.SecurityContext != nil && c.SecurityContext.SeccompProfile != nil {
		p, field = c.SecurityContext.SeccompProfile, path+".securityContext.seccompProfile"
	}
	if p == nil {
		return false, nil
	}
	switch p.Type {
	case corev1.SeccompProfileTypeRuntimeDefault:
		return false, nil
	case corev1.SeccompProfileTypeUnconfined:
		if !allowUnconfined {
			return false, fmt.Errorf("%s: Unconfined is not allowed by this server (gantry server --allow-unconfined-seccomp allows it)", field)
		}
		return true, nil
	case corev1.SeccompProfileTypeLocalhost:
		return false, fmt.Errorf("%s: Localhost profiles are not supported on a serverless node; use RuntimeDefault", field)
	}
	return false, fmt.Errorf("%s: unknown type %q", field, p.Type)
}

// runAsNonRoot is the container's runAsNonRoot, or the pod's.
func runAsNonRoot(pod *corev1.Pod, c *corev1.Container) bool {
	if c.SecurityContext != nil && c.SecurityContext.RunAsNonRoot != nil {
		return *c.SecurityContext.RunAsNonRoot
	}
	sc := pod.Spec.SecurityContext
	return sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot
}

// checkNonRoot refuses to run as uid 0 a container that asks for a non-root user, with the
// kubelet's messages: explicit says runAsUser set the uid, else the image did.
func checkNonRoot(pod *corev1.Pod, c *corev1.Container, uid uint32, explicit bool) error {
	if !runAsNonRoot(pod, c) || uid != 0 {
		return nil
	}
	if explicit {
		return fmt.Errorf("container's runAsUser breaks non-root policy (pod: %q, container: %s)", pod.Namespace+"/"+pod.Name, c.Name)
	}
	return fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", pod.Namespace+"/"+pod.Name, c.Name)
}

// containerSecurity resolves what container c's process may do: its capabilities, root
// filesystem, seccomp profile and supplementary groups (the pod's supplementalGroups and
// those the image's /etc/group gives its user). The queue-proxy gets what its contract asks
// whatever the pod says: no capabilities and a read-only root.
func containerSecurity(pod *corev1.Pod, c *corev1.Container, imageGroups []uint32, allowUnconfined bool) (sandbox.Security, error) {
	path := containerPath(pod, c.Name)
	var sec sandbox.Security
	var err error
	var capSpec *corev1.Capabilities
	if c.SecurityContext != nil {
		capSpec = c.SecurityContext.Capabilities
		sec.ReadOnlyRoot = c.SecurityContext.ReadOnlyRootFilesystem != nil && *c.SecurityContext.ReadOnlyRootFilesystem
	}
	if sec.Capabilities, err = capabilities(capSpec, path); err != nil {
		return sec, err
	}
	if sec.Unconfined, err = seccompUnconfined(pod, c, path, allowUnconfined); err != nil {
		return sec, err
	}
	sec.SupplementaryGIDs = slices.Clone(imageGroups)
	if sc := pod.Spec.SecurityContext; sc != nil {
		for _, g := range sc.SupplementalGroups {
			if g >= 0 && g <= int64(^uint32(0)) && !slices.Contains(sec.SupplementaryGIDs, uint32(g)) {
				sec.SupplementaryGIDs = append(sec.SupplementaryGIDs, uint32(g))
			}
		}
	}
	if contract.IsSidecar(c) {
		sec.Capabilities, sec.ReadOnlyRoot = []string{}, true
	}
	return sec, nil
}
