package node

import (
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/sandbox"
)

// defaultStorage is a pod's ephemeral storage when none of its containers limits it.
const defaultStorage = sandbox.DefaultEphemeralStorageBytes

// podSpec is the sandbox for pod: its size is the sum of its containers' limits (no CPU or
// memory limit when a container has none), its storage the sum of their ephemeral-storage
// limits or defaultStorage.
func podSpec(pod *corev1.Pod) sandbox.PodSpec {
	var cpu, mem, storage int64
	cpuSet, memSet := true, true
	for _, c := range pod.Spec.Containers {
		if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
			cpu += q.MilliValue()
		} else {
			cpuSet = false
		}
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			mem += q.Value()
		} else {
			memSet = false
		}
		if q, ok := c.Resources.Limits[corev1.ResourceEphemeralStorage]; ok {
			storage += q.Value()
		}
	}
	if !cpuSet {
		cpu = 0
	}
	if !memSet {
		mem = 0
	}
	if storage == 0 {
		storage = defaultStorage
	}
	hostname := pod.Spec.Hostname
	if hostname == "" {
		hostname = pod.Name
	}
	return sandbox.PodSpec{
		ID: string(pod.UID), Namespace: pod.Namespace, Name: pod.Name, Hostname: hostname,
		CPUMillis: cpu, MemoryBytes: mem, EphemeralStorageBytes: storage, Labels: pod.Labels,
	}
}

// specInput is what a container spec is resolved from besides the pod and the container.
type specInput struct {
	// img is the container's pulled image; nil for the queue-proxy, which runs from exe.
	img *image.Image
	// volumes are the host directories of the pod's volumes, by name.
	volumes map[string]string
	// sources look up the ConfigMaps and Secrets the environment refers to.
	sources Sources
	// emptyLayer is an empty directory, the root of the queue-proxy's container.
	emptyLayer string
	// exe is the gantry binary, bound into the queue-proxy's container.
	exe string
}

// containerSpec resolves container c of pod into what the sandbox runs: image layers, argv,
// environment, user, mounts and limits. The queue-proxy (contract.IsSidecar) is the gantry
// binary itself, bound into an empty root and run as contract.UID. An error is a
// CreateContainerConfigError (an environment source that is missing).
func containerSpec(pod *corev1.Pod, c *corev1.Container, in specInput) (sandbox.ContainerSpec, error) {
	var entrypoint, cmd, imageEnv, layers []string
	var mounts []sandbox.Mount
	uid, gid := uint32(0), uint32(0)
	workdir := c.WorkingDir
	if contract.IsSidecar(c) {
		layers = []string{in.emptyLayer}
		entrypoint = []string{contract.BinaryPath}
		mounts = append(mounts, sandbox.Mount{Source: in.exe, Destination: contract.BinaryPath, ReadOnly: true})
		uid, gid = contract.UID, contract.UID
	} else if in.img != nil {
		layers, entrypoint, cmd, imageEnv = in.img.Layers, in.img.Config.Entrypoint, in.img.Config.Cmd, in.img.Config.Env
		if workdir == "" {
			workdir = in.img.Config.WorkingDir
		}
		uid, gid = parseUser(in.img.Config.User)
	}
	for _, sc := range []*corev1.SecurityContext{podSecurity(pod), c.SecurityContext} {
		if sc == nil {
			continue
		}
		if sc.RunAsUser != nil {
			uid = uint32(*sc.RunAsUser)
		}
		if sc.RunAsGroup != nil {
			gid = uint32(*sc.RunAsGroup)
		}
	}
	env, err := Env(pod, c, imageEnv, in.sources)
	if err != nil {
		return sandbox.ContainerSpec{}, err
	}
	for _, vm := range c.VolumeMounts {
		src, ok := in.volumes[vm.Name]
		if !ok {
			continue
		}
		if vm.SubPath != "" {
			src = filepath.Join(src, filepath.Clean("/"+vm.SubPath))
		}
		mounts = append(mounts, sandbox.Mount{Source: src, Destination: vm.MountPath, ReadOnly: vm.ReadOnly})
	}
	return sandbox.ContainerSpec{
		Name:        c.Name,
		Layers:      layers,
		Args:        Argv(c, entrypoint, cmd, env),
		Env:         env,
		WorkingDir:  workdir,
		UID:         uid,
		GID:         gid,
		Mounts:      mounts,
		CPUMillis:   c.Resources.Limits.Cpu().MilliValue(),
		MemoryBytes: c.Resources.Limits.Memory().Value(),
	}, nil
}

// podSecurity is the user and group the pod's security context sets for all its containers.
func podSecurity(pod *corev1.Pod) *corev1.SecurityContext {
	sc := pod.Spec.SecurityContext
	if sc == nil {
		return nil
	}
	return &corev1.SecurityContext{RunAsUser: sc.RunAsUser, RunAsGroup: sc.RunAsGroup}
}

// parseUser reads an image's numeric "uid[:gid]"; names resolve to root.
func parseUser(u string) (uint32, uint32) {
	us, gs, _ := strings.Cut(u, ":")
	uid, err := strconv.ParseUint(us, 10, 32)
	if err != nil {
		return 0, 0
	}
	gid, err := strconv.ParseUint(gs, 10, 32)
	if err != nil {
		gid = uid
	}
	return uint32(uid), uint32(gid)
}
