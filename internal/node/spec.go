package node

import (
	"fmt"
	"net"

	corev1 "k8s.io/api/core/v1"

	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/sandbox"
)

// defaultStorage is a pod's ephemeral storage when none of its containers limits it.
const defaultStorage = sandbox.DefaultEphemeralStorageBytes

// podSpec is the sandbox for pod: its CPU and memory are podSize's (def for a pod whose
// containers do not all set limits), its storage the sum of its containers'
// ephemeral-storage limits or defaultStorage, its runtime runsc for the gvisor RuntimeClass,
// and a user namespace of its own unless it sets hostUsers: true (which the worker refuses
// unless Options.AllowHostUsers) or runs on gVisor, whose kernel is its boundary (runsc
// makes a user namespace of its own for it and cannot join the node's).
//
// A pod on a serverless node gets what it was provisioned instead (ProvisionedSize): its CPU
// quota, memory limit and ephemeral storage, whatever its containers ask; and the address
// its node is named after.
func podSpec(pod *corev1.Pod, def PodLimits) sandbox.PodSpec {
	cpu, mem := podSize(pod, def)
	var storage int64
	for _, c := range pod.Spec.Containers {
		if q, ok := c.Resources.Limits[corev1.ResourceEphemeralStorage]; ok {
			storage += q.Value()
		}
	}
	if storage == 0 {
		storage = defaultStorage
	}
	var ip net.IP
	if onServerlessNode(pod) {
		if size, err := ProvisionedSize(pod); err == nil {
			cpu, mem = size.Capacity.MilliCPU, size.Capacity.MemoryBytes()
			if size.EphemeralStorageBytes > 0 {
				storage = size.EphemeralStorageBytes
			}
		}
		if addr, ok := ServerlessNodeIP(pod.Spec.NodeName); ok {
			ip = net.IP(addr.AsSlice())
		}
	}
	hostname := pod.Spec.Hostname
	if hostname == "" {
		hostname = pod.Name
	}
	return sandbox.PodSpec{
		ID: string(pod.UID), Namespace: pod.Namespace, Name: pod.Name, Hostname: hostname,
		CPUMillis: cpu, MemoryBytes: mem, EphemeralStorageBytes: storage, Labels: pod.Labels,
		Runtime: runtimeOf(pod), UserNamespace: !hostUsers(pod) && runtimeOf(pod) == sandbox.RuntimeRunc,
		IP: ip,
	}
}

// specInput is what a container spec is resolved from besides the pod and the container.
type specInput struct {
	// img is the container's pulled image; nil for the queue-proxy, which runs from
	// queueProxy.
	img *image.Image
	// volumes are the host directories of the pod's volumes, by name.
	volumes map[string]string
	// socketDir is the host directory mounted at contract.SocketDir in the queue-proxy's
	// container, "" for none.
	socketDir string
	// sources look up the ConfigMaps and Secrets the environment refers to.
	sources Sources
	// emptyLayer is an empty directory, the root of the queue-proxy's container.
	emptyLayer string
	// queueProxy is the queue-proxy's binary, bound into its container.
	queueProxy string
	// allowUnconfined lets a pod run without a seccomp filter when it asks
	// (Options.AllowUnconfinedSeccomp).
	allowUnconfined bool
	// memoryCapacity is the machine's memory, which OOM score adjustments are reckoned in.
	memoryCapacity int64
	// limits are the node's default pod limits (containerCPU).
	limits PodLimits
}

// containerSpec resolves container c of pod into what the sandbox runs: image layers, argv,
// environment, user, mounts, security and limits. The queue-proxy (contract.IsSidecar) is
// in.queueProxy, bound into an empty root and run as contract.UID. The user is the
// image's USER, resolved in the image's /etc/passwd and /etc/group, unless runAsUser and
// runAsGroup say otherwise. An error is a CreateContainerConfigError: an environment source
// that is missing, a user the image does not define, a runAsNonRoot container that would run
// as root, a security setting the node refuses.
func containerSpec(pod *corev1.Pod, c *corev1.Container, in specInput) (sandbox.ContainerSpec, error) {
	var entrypoint, cmd, imageEnv, layers []string
	var mounts []sandbox.Mount
	var user imageUser
	workdir := c.WorkingDir
	if contract.IsSidecar(c) {
		layers = []string{in.emptyLayer}
		entrypoint = []string{contract.BinaryPath}
		mounts = append(mounts, sandbox.Mount{Source: in.queueProxy, Destination: contract.BinaryPath, ReadOnly: true})
		user = imageUser{UID: contract.UID, GID: contract.UID}
	} else if in.img != nil {
		layers, entrypoint, cmd, imageEnv = in.img.Layers, in.img.Config.Entrypoint, in.img.Config.Cmd, in.img.Config.Env
		if workdir == "" {
			workdir = in.img.Config.WorkingDir
		}
		db, err := readUserDB(layers)
		if err != nil {
			return sandbox.ContainerSpec{}, err
		}
		if user, err = resolveUser(in.img.Config.User, db); err != nil {
			return sandbox.ContainerSpec{}, err
		}
	}
	uid, gid := user.UID, user.GID
	explicitUID := false
	for _, sc := range []*corev1.SecurityContext{podSecurity(pod), c.SecurityContext} {
		if sc == nil {
			continue
		}
		if sc.RunAsUser != nil {
			uid, explicitUID = uint32(*sc.RunAsUser), true
		}
		if sc.RunAsGroup != nil {
			gid = uint32(*sc.RunAsGroup)
		}
	}
	if err := checkNonRoot(pod, c, uid, explicitUID); err != nil {
		return sandbox.ContainerSpec{}, err
	}
	groups := user.Groups
	if uid != user.UID {
		groups = nil // the image's groups belong to its user, not to the one runAsUser names
	}
	sec, err := containerSecurity(pod, c, groups, in.allowUnconfined)
	if err != nil {
		return sandbox.ContainerSpec{}, err
	}
	env, err := Env(pod, c, imageEnv, in.sources)
	if err != nil {
		return sandbox.ContainerSpec{}, err
	}
	vmounts, err := volumeMounts(pod, c, in.volumes, env)
	if err != nil {
		return sandbox.ContainerSpec{}, err
	}
	if contract.IsSidecar(c) && in.socketDir != "" {
		mounts = append(mounts, sandbox.Mount{Source: in.socketDir, Destination: contract.SocketDir})
		env = append(env, contract.EnvSocket+"="+contract.SocketDir+"/"+contract.SocketName)
	}
	return sandbox.ContainerSpec{
		Name:        c.Name,
		Layers:      layers,
		Args:        Argv(c, entrypoint, cmd, env),
		Env:         env,
		WorkingDir:  workdir,
		UID:         uid,
		GID:         gid,
		Mounts:      append(mounts, vmounts...),
		Security:    sec,
		CPUMillis:   containerCPU(pod, c, in.limits),
		MemoryBytes: c.Resources.Limits.Memory().Value(),
		OOMScoreAdj: oomScoreAdj(pod, c, in.memoryCapacity),
	}, nil
}

// volumeMounts are container c's volume mounts. A subPath (or a subPathExpr, expanded against
// the container's environment) is handed to the sandbox as it is written, never joined onto
// the volume's path here: the sandbox resolves it inside the volume, where a container may have
// planted symbolic links. Volumes the node writes (configMap, secret, downwardAPI, projected)
// are mounted read-only, as the kubelet mounts them, so no container can change what the node
// writes there later.
func volumeMounts(pod *corev1.Pod, c *corev1.Container, volumes map[string]string, env []string) ([]sandbox.Mount, error) {
	var vars map[string]string
	var out []sandbox.Mount
	for i, vm := range c.VolumeMounts {
		src, ok := volumes[vm.Name]
		if !ok {
			continue
		}
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			if vars == nil {
				vars = envMap(env)
			}
			sub = Expand(vm.SubPathExpr, vars)
		}
		if vm.SubPath != "" || vm.SubPathExpr != "" {
			clean, err := sandbox.CleanSubPath(sub)
			if err != nil {
				return nil, fmt.Errorf("%s.volumeMounts[%d]: %w", containerPath(pod, c.Name), i, err)
			}
			sub = clean
		}
		out = append(out, sandbox.Mount{Source: src, SubPath: sub, Destination: vm.MountPath, ReadOnly: vm.ReadOnly || nodeWritten(pod, vm.Name) || readOnlyClaim(pod, vm.Name)})
	}
	return out, nil
}

// nodeWritten reports whether the pod's volume called name holds files the node writes.
func nodeWritten(pod *corev1.Pod, name string) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Name == name {
			return v.ConfigMap != nil || v.Secret != nil || v.DownwardAPI != nil || v.Projected != nil
		}
	}
	return false
}

// podSecurity is the user and group the pod's security context sets for all its containers.
func podSecurity(pod *corev1.Pod) *corev1.SecurityContext {
	sc := pod.Spec.SecurityContext
	if sc == nil {
		return nil
	}
	return &corev1.SecurityContext{RunAsUser: sc.RunAsUser, RunAsGroup: sc.RunAsGroup}
}

// hostUsers reports whether pod asks to run in the host's user namespace (spec.hostUsers:
// true). Kubernetes' default is true; a serverless node's is false, a user namespace per
// pod, so a pod must say true to share the host's.
func hostUsers(pod *corev1.Pod) bool {
	return pod.Spec.HostUsers != nil && *pod.Spec.HostUsers
}

// hostUsersRefusal says why pod may not run, when it asks for the host's user namespace and
// allow (Options.AllowHostUsers) is false; "" otherwise.
func hostUsersRefusal(pod *corev1.Pod, allow bool) string {
	if !hostUsers(pod) || allow {
		return ""
	}
	return "spec.hostUsers: true is not allowed by this node: every pod runs in a user namespace of its own (gantry server --allow-host-users allows it)"
}

// GVisorRuntimeClass is the RuntimeClass whose pods run on gVisor (runsc) instead of runc.
const GVisorRuntimeClass = "gvisor"

// runtimeOf is the sandbox runtime of pod's runtimeClassName.
func runtimeOf(pod *corev1.Pod) string {
	if pod.Spec.RuntimeClassName != nil && *pod.Spec.RuntimeClassName == GVisorRuntimeClass {
		return sandbox.RuntimeRunsc
	}
	return sandbox.RuntimeRunc
}

// runtimeClassRefusal says why pod may not run when it names a RuntimeClass this node does
// not serve; "" otherwise.
func runtimeClassRefusal(pod *corev1.Pod) string {
	name := pod.Spec.RuntimeClassName
	if name == nil || *name == "" || *name == GVisorRuntimeClass {
		return ""
	}
	return fmt.Sprintf("spec.runtimeClassName: %q is not served by this node (it runs the default runtime, runc, and %q, gVisor)", *name, GVisorRuntimeClass)
}
