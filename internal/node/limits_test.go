package node

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/sandbox"
	"github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

func resources(requests, limits map[corev1.ResourceName]string) corev1.ResourceRequirements {
	list := func(m map[corev1.ResourceName]string) corev1.ResourceList {
		if m == nil {
			return nil
		}
		out := corev1.ResourceList{}
		for k, v := range m {
			out[k] = resource.MustParse(v)
		}
		return out
	}
	return corev1.ResourceRequirements{Requests: list(requests), Limits: list(limits)}
}

const (
	cpu = corev1.ResourceCPU
	mem = corev1.ResourceMemory
)

// knativeQueue is a revision's queue-proxy as Knative asks for it: 25m of CPU, nothing else.
var knativeQueue = corev1.Container{Name: contract.ContainerName, Image: contract.Image, Resources: resources(map[corev1.ResourceName]string{cpu: "25m"}, nil)}

func TestPodSize(t *testing.T) {
	def := PodLimits{CPUMillis: 1000, MemoryBytes: 1 << 30}
	for _, tc := range []struct {
		name     string
		init     []corev1.Container
		ctrs     []corev1.Container
		cpu, mem int64
	}{
		{name: "no requests or limits: the default", ctrs: []corev1.Container{{Name: "app"}}, cpu: 1000, mem: 1 << 30},
		{name: "a Knative revision's pod: the default for the user's, the default again for the queue-proxy's CPU, not 25m",
			ctrs: []corev1.Container{{Name: "user"}, knativeQueue}, cpu: 2000, mem: 1 << 30},
		{name: "requests above the default are kept",
			ctrs: []corev1.Container{{Name: "app", Resources: resources(map[corev1.ResourceName]string{cpu: "1500m", mem: "3Gi"}, nil)}, knativeQueue},
			cpu:  2500, mem: 3 << 30},
		{name: "a limited user container and a limited queue-proxy: the sum",
			ctrs: []corev1.Container{{Name: "app", Resources: resources(nil, map[corev1.ResourceName]string{cpu: "250m", mem: "256Mi"})},
				{Name: contract.ContainerName, Image: contract.Image, Resources: resources(nil, map[corev1.ResourceName]string{cpu: "500m", mem: "64Mi"})}},
			cpu: 750, mem: 320 << 20},
		{name: "a container named queue-proxy that is not the sidecar counts as the user's",
			ctrs: []corev1.Container{{Name: "app"}, {Name: contract.ContainerName, Image: "example.com/mine"}}, cpu: 1000, mem: 1 << 30},
		{name: "every container limited: the sum of limits, even below the default",
			ctrs: []corev1.Container{
				{Name: "a", Resources: resources(nil, map[corev1.ResourceName]string{cpu: "100m", mem: "64Mi"})},
				{Name: "b", Resources: resources(nil, map[corev1.ResourceName]string{cpu: "200m", mem: "32Mi"})},
			}, cpu: 300, mem: 96 << 20},
		{name: "one container unlimited: its request counts, then the default",
			ctrs: []corev1.Container{
				{Name: "a", Resources: resources(nil, map[corev1.ResourceName]string{cpu: "2", mem: "2Gi"})},
				{Name: "b"},
			}, cpu: 2000, mem: 2 << 30},
		{name: "CPU limited everywhere, memory not",
			ctrs: []corev1.Container{{Name: "a", Resources: resources(nil, map[corev1.ResourceName]string{cpu: "250m"})}},
			cpu:  250, mem: 1 << 30},
		{name: "a larger init container sizes the pod",
			init: []corev1.Container{{Name: "i", Resources: resources(nil, map[corev1.ResourceName]string{cpu: "1", mem: "512Mi"})}},
			ctrs: []corev1.Container{{Name: "a", Resources: resources(nil, map[corev1.ResourceName]string{cpu: "500m", mem: "128Mi"})}},
			cpu:  1000, mem: 512 << 20},
		{name: "an unlimited init container brings the default",
			init: []corev1.Container{{Name: "i"}},
			ctrs: []corev1.Container{{Name: "a", Resources: resources(nil, map[corev1.ResourceName]string{cpu: "500m", mem: "128Mi"})}},
			cpu:  1000, mem: 1 << 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := testPod(tc.ctrs...)
			pod.Spec.InitContainers = tc.init
			spec := podSpec(pod, def)
			if spec.CPUMillis != tc.cpu || spec.MemoryBytes != tc.mem {
				t.Errorf("pod size %dm CPU, %d bytes; want %dm, %d", spec.CPUMillis, spec.MemoryBytes, tc.cpu, tc.mem)
			}
		})
	}
}

func TestDefaultLimits(t *testing.T) {
	n := &Node{}
	if got := n.defaultLimits(); got != DefaultPodLimits {
		t.Errorf("zero options: %+v; want %+v", got, DefaultPodLimits)
	}
	n.opts.DefaultPodLimits = PodLimits{MemoryBytes: 2 << 30}
	if got, want := n.defaultLimits(), (PodLimits{CPUMillis: DefaultPodLimits.CPUMillis, MemoryBytes: 2 << 30}); got != want {
		t.Errorf("memory set: %+v; want %+v", got, want)
	}
}

func TestOOMScoreAdj(t *testing.T) {
	const capacity = 10 << 30
	for _, tc := range []struct {
		name  string
		class corev1.PodQOSClass
		c     corev1.Container
		want  int
	}{
		{"BestEffort", corev1.PodQOSBestEffort, corev1.Container{Name: "a"}, 1000},
		{"Guaranteed", corev1.PodQOSGuaranteed, corev1.Container{Name: "a", Resources: resources(nil, map[corev1.ResourceName]string{cpu: "1", mem: "1Gi"})}, -997},
		{"Burstable, a tenth of the memory requested", corev1.PodQOSBurstable,
			corev1.Container{Name: "a", Resources: resources(map[corev1.ResourceName]string{mem: "1Gi"}, nil)}, 900},
		{"Burstable, no memory requested (the queue-proxy)", corev1.PodQOSBurstable, knativeQueue, 999},
		{"Burstable, all the memory requested", corev1.PodQOSBurstable,
			corev1.Container{Name: "a", Resources: resources(map[corev1.ResourceName]string{mem: "10Gi"}, nil)}, 3},
		{"class computed when the status has none", "", knativeQueue, 999},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := testPod(tc.c)
			pod.Status.QOSClass = tc.class
			if got := oomScoreAdj(pod, &pod.Spec.Containers[0], capacity); got != tc.want {
				t.Errorf("oomScoreAdj = %d; want %d", got, tc.want)
			}
		})
	}
}

// TestContainerCPU: in a revision pod each part is held to its own share, so the app cannot
// use the queue-proxy's and the other way round; elsewhere the pod's cgroup alone holds an
// unlimited container.
func TestContainerCPU(t *testing.T) {
	def := PodLimits{CPUMillis: 1000, MemoryBytes: 1 << 30}
	limited := corev1.Container{Name: "app", Resources: resources(nil, map[corev1.ResourceName]string{cpu: "300m"})}
	serverless := testPod(corev1.Container{Name: "user"}, knativeQueue)
	serverless.Spec.NodeName = v1alpha1.NodeNamePrefix + "10-0-0-1"
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want []int64
	}{
		{"a revision pod: the user's share and the queue-proxy's", testPod(corev1.Container{Name: "user"}, knativeQueue), []int64{1000, 1000}},
		{"a limited user container keeps its limit", testPod(limited, knativeQueue), []int64{300, 1000}},
		{"no queue-proxy: the pod's cgroup holds them", testPod(corev1.Container{Name: "a"}, corev1.Container{Name: "b"}), []int64{0, 0}},
		{"a serverless pod: its provisioned size holds them", serverless, []int64{0, 0}},
	} {
		for i := range tc.pod.Spec.Containers {
			if got := containerCPU(tc.pod, &tc.pod.Spec.Containers[i], def); got != tc.want[i] {
				t.Errorf("%s: container %s gets %dm; want %dm", tc.name, tc.pod.Spec.Containers[i].Name, got, tc.want[i])
			}
		}
	}
}

// TestContainerSpecOOMScoreAdj: the sandbox is asked for the kubelet's adjustment.
func TestContainerSpecOOMScoreAdj(t *testing.T) {
	pod := testPod(knativeQueue)
	spec, err := containerSpec(pod, &pod.Spec.Containers[0], specInput{emptyLayer: "/empty", queueProxy: "/gantry", memoryCapacity: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if spec.OOMScoreAdj != 1000 {
		t.Errorf("a BestEffort pod's queue-proxy gets OOMScoreAdj %d; want 1000", spec.OOMScoreAdj)
	}
}

func TestUserNamespaceByDefault(t *testing.T) {
	pod := testPod(corev1.Container{Name: "app"})
	if !podSpec(pod, DefaultPodLimits).UserNamespace {
		t.Error("a pod that does not set hostUsers gets no user namespace")
	}
	if msg := hostUsersRefusal(pod, false); msg != "" {
		t.Errorf("a pod that does not set hostUsers is refused: %s", msg)
	}
	no := false
	pod.Spec.HostUsers = &no
	if !podSpec(pod, DefaultPodLimits).UserNamespace {
		t.Error("a pod with hostUsers: false gets no user namespace")
	}
	yes := true
	pod.Spec.HostUsers = &yes
	if podSpec(pod, DefaultPodLimits).UserNamespace {
		t.Error("a pod with hostUsers: true gets a user namespace")
	}
	if msg := hostUsersRefusal(pod, false); msg == "" {
		t.Error("hostUsers: true is not refused without AllowHostUsers")
	}
	if msg := hostUsersRefusal(pod, true); msg != "" {
		t.Errorf("hostUsers: true is refused with AllowHostUsers: %s", msg)
	}
}

// TestHostUsersRefused: a pod that asks for the host's user namespace fails, saying why,
// on a node that does not allow it.
func TestHostUsersRefused(t *testing.T) {
	pod := testPod(corev1.Container{Name: "app", Image: "registry.test/app"})
	yes := true
	pod.Spec.HostUsers = &yes
	n, _, _, _ := testNode(t, pod)
	w := newWorker(n, pod)
	step(t, w)
	if w.pod.Status.Phase != corev1.PodFailed || !strings.Contains(w.pod.Status.Message, "spec.hostUsers") {
		t.Errorf("phase %s, message %q; want Failed naming spec.hostUsers", w.pod.Status.Phase, w.pod.Status.Message)
	}
}

func TestRuntimeClass(t *testing.T) {
	pod := testPod(corev1.Container{Name: "app"})
	if spec := podSpec(pod, DefaultPodLimits); spec.Runtime != sandbox.RuntimeRunc {
		t.Errorf("no runtimeClassName: runtime %q; want runc", spec.Runtime)
	}
	gvisor := GVisorRuntimeClass
	pod.Spec.RuntimeClassName = &gvisor
	if spec := podSpec(pod, DefaultPodLimits); spec.Runtime != sandbox.RuntimeRunsc || spec.UserNamespace {
		t.Errorf("runtimeClassName gvisor: runtime %q, user namespace %v; want runsc, none of the node's", spec.Runtime, spec.UserNamespace)
	}
	if msg := runtimeClassRefusal(pod); msg != "" {
		t.Errorf("gvisor is refused: %s", msg)
	}
	kata := "kata"
	pod.Spec.RuntimeClassName = &kata
	if msg := runtimeClassRefusal(pod); !strings.Contains(msg, "spec.runtimeClassName") {
		t.Errorf("runtimeClassName kata: refusal %q; want one naming spec.runtimeClassName", msg)
	}
}
