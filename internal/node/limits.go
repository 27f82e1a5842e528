package node

import (
	"os"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	v1qos "k8s.io/kubernetes/pkg/apis/core/v1/helper/qos"

	"github.com/gantry-run/gantry/internal/queue/contract"
)

// PodLimits is the CPU and memory a pod's cgroup is held to when its containers do not
// all set a limit.
type PodLimits struct {
	// CPUMillis is the CPU quota, in millicores.
	CPUMillis int64
	// MemoryBytes is the memory limit.
	MemoryBytes int64
}

// DefaultPodLimits is Options.DefaultPodLimits when it is zero: one vCPU and 1 GiB.
//
// Not the pod's requests: a Knative revision's pod requests 25m of CPU for its queue-proxy
// and often nothing for the user's container, and a cap of 25m would starve it. Not
// Fargate's smallest size (0.25 vCPU, 0.5 GB) either: Fargate bills that size and sizes each
// pod's machine to it, where here the cap only keeps one pod from taking the whole machine,
// and a quarter of a CPU would slow every revision that did not think to ask for more. One
// vCPU is what Cloud Run gives a Knative-style service by default; 1 GiB holds the runtimes
// (a JVM, Node.js) that 512 MiB does not, with the queue-proxy beside them.
var DefaultPodLimits = PodLimits{CPUMillis: 1000, MemoryBytes: 1 << 30}

// podSize is the CPU (millicores) and memory (bytes) pod's cgroup is held to. A pod whose
// containers (init containers included) all set a limit gets Kubernetes' effective limit:
// the larger of the sum of its containers' limits and its largest init container's. Any
// other pod gets the same sum taken over each container's limit, or its request when it
// has no limit, and at least def: so requests never lower the cap below def, and a pod
// that asks for more than def gets what it asked for.
//
// A revision pod's queue-proxy is sized apart for CPU, as Knative sizes its sidecar apart
// from the user's containers: the pod's CPU is its other containers' by the rule above plus
// the queue-proxy's own (sidecarCPU), and containerCPU holds each to its part, so the proxy,
// which does about as much work per request as the app, does not take it from the app's
// share (nor the app from the proxy's).
func podSize(pod *corev1.Pod, def PodLimits) (cpuMillis, memoryBytes int64) {
	cpuMillis = resourceSize(pod, corev1.ResourceCPU, def.CPUMillis, func(c *corev1.Container) bool { return !contract.IsSidecar(c) })
	if qp := sidecarOf(pod); qp != nil {
		cpuMillis += sidecarCPU(qp, def)
	}
	return cpuMillis, resourceSize(pod, corev1.ResourceMemory, def.MemoryBytes, func(*corev1.Container) bool { return true })
}

// sidecarOf is pod's queue-proxy container, nil when it has none.
func sidecarOf(pod *corev1.Pod) *corev1.Container {
	for i := range pod.Spec.Containers {
		if contract.IsSidecar(&pod.Spec.Containers[i]) {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

// sidecarCPU is the queue-proxy's CPU: its limit, else def's (Knative leaves the sidecar
// without a limit by default; here it gets as much as an app without one).
func sidecarCPU(qp *corev1.Container, def PodLimits) int64 {
	if q, ok := qp.Resources.Limits[corev1.ResourceCPU]; ok {
		return q.MilliValue()
	}
	return def.CPUMillis
}

// containerCPU is the CPU quota (millicores) of container c's own cgroup, 0 for none (the
// pod's cgroup holds it): its limit when it sets one. In a revision pod off serverless nodes,
// whose queue-proxy is sized apart (podSize), a container without a limit is held to its
// part: the queue-proxy to sidecarCPU, any other to the other containers' size.
func containerCPU(pod *corev1.Pod, c *corev1.Container, def PodLimits) int64 {
	if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		return q.MilliValue()
	}
	if onServerlessNode(pod) || sidecarOf(pod) == nil {
		return 0
	}
	if contract.IsSidecar(c) {
		return def.CPUMillis
	}
	return resourceSize(pod, corev1.ResourceCPU, def.CPUMillis, func(c *corev1.Container) bool { return !contract.IsSidecar(c) })
}

// resourceSize is podSize's rule for resource r over the containers that count.
func resourceSize(pod *corev1.Pod, r corev1.ResourceName, def int64, counts func(*corev1.Container) bool) int64 {
	limited := true
	amount := func(c *corev1.Container) int64 {
		if !counts(c) {
			return 0
		}
		q, ok := c.Resources.Limits[r]
		if !ok {
			limited = false
			q, ok = c.Resources.Requests[r]
			if !ok {
				return 0
			}
		}
		if r == corev1.ResourceCPU {
			return q.MilliValue()
		}
		return q.Value()
	}
	var sum, initMax int64
	for i := range pod.Spec.Containers {
		sum += amount(&pod.Spec.Containers[i])
	}
	for i := range pod.Spec.InitContainers {
		initMax = max(initMax, amount(&pod.Spec.InitContainers[i]))
	}
	size := max(sum, initMax)
	if !limited {
		size = max(size, def)
	}
	return size
}

// OOM score adjustments, as the kubelet gives them (/proc/<pid>/oom_score_adj, -1000 to
// 1000; the host's OOM killer picks the process with the highest badness, which is its
// share of memory in thousandths plus this).
const (
	// NodeOOMScoreAdj is gantry's own, which embeds etcd and the API server: the kubelet's.
	NodeOOMScoreAdj = -999
	// guaranteedOOMScoreAdj is a Guaranteed pod's containers'.
	guaranteedOOMScoreAdj = -997
	// bestEffortOOMScoreAdj is a BestEffort pod's containers': killed first.
	bestEffortOOMScoreAdj = 1000
)

// oomScoreAdj is the OOM score adjustment of container c's processes, by the kubelet's
// rule: a Guaranteed pod's -997, a BestEffort pod's 1000, and a Burstable pod's 1000 less
// the container's memory request in thousandths of the machine's memory (a container that
// requests a tenth of it gets 900), kept within 3 to 999 so that it stays between the other
// two classes. capacity is the machine's memory; the pod's class is its status's, or
// computed when the API server has not set it.
func oomScoreAdj(pod *corev1.Pod, c *corev1.Container, capacity int64) int {
	class := pod.Status.QOSClass
	if class == "" {
		class = v1qos.GetPodQOS(pod)
	}
	switch class {
	case corev1.PodQOSGuaranteed:
		return guaranteedOOMScoreAdj
	case corev1.PodQOSBestEffort:
		return bestEffortOOMScoreAdj
	}
	if capacity <= 0 {
		return bestEffortOOMScoreAdj - 1
	}
	adj := 1000 - 1000*c.Resources.Requests.Memory().Value()/capacity
	return int(min(max(adj, 1000+guaranteedOOMScoreAdj), bestEffortOOMScoreAdj-1))
}

// defaultLimits is Options.DefaultPodLimits with DefaultPodLimits' for its zero fields.
func (n *Node) defaultLimits() PodLimits {
	l := n.opts.DefaultPodLimits
	if l.CPUMillis <= 0 {
		l.CPUMillis = DefaultPodLimits.CPUMillis
	}
	if l.MemoryBytes <= 0 {
		l.MemoryBytes = DefaultPodLimits.MemoryBytes
	}
	return l
}

// setOOMScoreAdj sets this process's OOM score adjustment; the processes it starts from
// then on (the containers' shims among them) inherit it.
func setOOMScoreAdj(adj int) error {
	return os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(adj)), 0)
}
