package node

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

func TestServerlessNodeName(t *testing.T) {
	ip := netip.MustParseAddr("10.42.128.5")
	name := ServerlessNodeName(ip)
	if name != "serverless-ip-10-42-128-5" {
		t.Fatalf("ServerlessNodeName = %q", name)
	}
	if got, ok := ServerlessNodeIP(name); !ok || got != ip {
		t.Errorf("ServerlessNodeIP(%q) = %v, %v", name, got, ok)
	}
	for _, bad := range []string{"gantry", "serverless-ip-", "serverless-ip-10-42-128", "serverless-ip-10-42-128-500", "serverless-ip-010-42-128-5", "serverless-ip-10-42-128-5-6"} {
		if ip, ok := ServerlessNodeIP(bad); ok {
			t.Errorf("ServerlessNodeIP(%q) = %v, want no address", bad, ip)
		}
	}
}

func serverlessPod(annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "u", Annotations: annotations},
		Spec: corev1.PodSpec{NodeName: "serverless-ip-10-42-128-5", Containers: []corev1.Container{{Name: "c",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("3")}}}}},
	}
}

func TestPodSpecOfAServerlessPodIsItsProvisionedSize(t *testing.T) {
	pod := serverlessPod(map[string]string{
		v1alpha1.CapacityProvisionedAnnotation:         "0.25vCPU 0.5GB",
		v1alpha1.EphemeralStorageProvisionedAnnotation: "21Gi",
	})
	spec := podSpec(pod, DefaultPodLimits)
	if spec.CPUMillis != 250 || spec.MemoryBytes != 512<<20 || spec.EphemeralStorageBytes != 21<<30 {
		t.Errorf("got %d m, %d bytes, %d bytes of storage; want 250 m, 512 MiB, 21 GiB", spec.CPUMillis, spec.MemoryBytes, spec.EphemeralStorageBytes)
	}
	if !spec.IP.Equal(net.ParseIP("10.42.128.5")) {
		t.Errorf("IP = %v, want the node's 10.42.128.5", spec.IP)
	}
	if msg := serverlessRefusal(pod); msg != "" {
		t.Errorf("refused: %s", msg)
	}

	shared := pod.DeepCopy()
	shared.Spec.NodeName = "gantry"
	if spec := podSpec(shared, DefaultPodLimits); spec.CPUMillis != 3000 || spec.IP != nil {
		t.Errorf("a pod on the shared node: got %d m and IP %v, want its containers' 3000 m and no address", spec.CPUMillis, spec.IP)
	}
}

func TestServerlessRefusal(t *testing.T) {
	for name, tt := range map[string]struct {
		ann  map[string]string
		want string
	}{
		"no capacity":  {nil, "metadata.annotations[serverless.gantry.dev/capacity-provisioned]: missing"},
		"bad capacity": {map[string]string{v1alpha1.CapacityProvisionedAnnotation: "lots"}, "metadata.annotations[serverless.gantry.dev/capacity-provisioned]: capacity \"lots\""},
		"bad storage": {map[string]string{v1alpha1.CapacityProvisionedAnnotation: "1vCPU 2GB", v1alpha1.EphemeralStorageProvisionedAnnotation: "-3"},
			"metadata.annotations[serverless.gantry.dev/ephemeral-storage-provisioned]"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := serverlessRefusal(serverlessPod(tt.ann)); !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

func TestAllocatableIsCapacityLessTheReserve(t *testing.T) {
	n := MakeNode(NodeInfo{Name: "gantry", CPUs: 2, MemoryBytes: 4 << 30, Reserved: PodLimits{CPUMillis: 250, MemoryBytes: 1 << 30}}, metav1.Now().Time)
	if got := n.Status.Allocatable.Cpu().MilliValue(); got != 1750 {
		t.Errorf("allocatable CPU = %dm, want 1750m", got)
	}
	if got := n.Status.Allocatable.Memory().Value(); got != 3<<30 {
		t.Errorf("allocatable memory = %d, want 3 GiB", got)
	}
	if got := n.Status.Capacity.Cpu().MilliValue(); got != 2000 {
		t.Errorf("capacity CPU = %dm, want 2000m", got)
	}
	n = MakeNode(NodeInfo{Name: "gantry", CPUs: 1, MemoryBytes: 1 << 30, Reserved: PodLimits{CPUMillis: 4000, MemoryBytes: 2 << 30}}, metav1.Now().Time)
	if n.Status.Allocatable.Cpu().Sign() != 0 || n.Status.Allocatable.Memory().Sign() != 0 {
		t.Errorf("a reserve above capacity: allocatable %v, want zero", n.Status.Allocatable)
	}
}

// TestWorkerRunsAServerlessPodAtItsSizeAndEvictsPastItsStorage: a pod on a serverless node
// gets a sandbox of its provisioned size at its node's address, its status goes through the
// serverless client, and writing past its provisioned storage evicts it, naming the
// annotation.
func TestWorkerRunsAServerlessPodAtItsSizeAndEvictsPastItsStorage(t *testing.T) {
	pod := testPod(corev1.Container{Name: "app", Image: "registry.test/app"})
	pod.Spec.NodeName = "serverless-ip-10-42-128-9"
	pod.Annotations = map[string]string{
		v1alpha1.CapacityProvisionedAnnotation:         "0.5vCPU 1GB",
		v1alpha1.EphemeralStorageProvisionedAnnotation: "1Gi",
	}
	n, cs, sb, clk := testNode(t, pod)
	n.opts.Client = nil // the node's own identity may not touch a serverless node's pods
	n.opts.ServerlessClient = cs
	n.serverlessCMs, n.serverlessSecrets = n.cms, n.secrets
	sb.pids = true
	w := newWorker(n, pod)
	step(t, w)
	got := sb.sandboxes[string(pod.UID)].Spec
	if got.CPUMillis != 500 || got.MemoryBytes != 1<<30 || got.EphemeralStorageBytes != 1<<30 || !got.IP.Equal(net.ParseIP("10.42.128.9")) {
		t.Errorf("sandbox %d m, %d bytes, %d bytes of storage, IP %v; want 500 m, 1 GiB, 1 GiB, 10.42.128.9",
			got.CPUMillis, got.MemoryBytes, got.EphemeralStorageBytes, got.IP)
	}
	if statusWrites(cs) == 0 {
		t.Error("no status written through the serverless client")
	}

	sb.mu.Lock()
	sb.usage = 1<<30 + 1
	sb.mu.Unlock()
	clk.Step(time.Hour)
	step(t, w)
	if w.pod.Status.Phase != corev1.PodFailed || w.pod.Status.Reason != reasonEvicted ||
		!strings.Contains(w.pod.Status.Message, "provisioned ephemeral storage 1Gi ("+v1alpha1.EphemeralStorageProvisionedAnnotation) {
		t.Errorf("phase %s, reason %q, message %q; want Failed, Evicted, naming the provisioned storage", w.pod.Status.Phase, w.pod.Status.Reason, w.pod.Status.Message)
	}
}

// TestServesOnlyItsOwnServerlessNodes: of the pods bound to serverless nodes, an agent holds
// those whose node's address lies in its range: another machine's, and the shared node's,
// are not its.
func TestServesOnlyItsOwnServerlessNodes(t *testing.T) {
	mine := netip.MustParsePrefix("10.42.128.0/17")
	for name, want := range map[string]bool{
		"serverless-ip-10-42-128-9":   true,
		"serverless-ip-10-42-255-254": true,
		"serverless-ip-10-43-128-9":   false, // another machine's range
		"serverless-ip-10-42-0-9":     false, // the shared half of the range
		"gantry":                      false,
		"serverless-ip-10-042-128-9":  false, // not a name the scheduler makes
	} {
		if got := ServesServerlessNode(mine, name); got != want {
			t.Errorf("ServesServerlessNode(%s, %s) = %v, want %v", mine, name, got, want)
		}
	}

	pods := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for i, nodeName := range []string{"serverless-ip-10-42-128-9", "serverless-ip-10-43-128-9", ""} {
		_ = pods.Add(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("p%d", i)}, Spec: corev1.PodSpec{NodeName: nodeName}})
	}
	l := boundLister{corelisters.NewPodLister(pods), mine}
	got, err := l.List(labels.Everything())
	if err != nil || len(got) != 1 || got[0].Name != "p0" {
		t.Errorf("List = %v, %v; want p0 only", got, err)
	}
	if _, err := l.Pods("ns").Get("p1"); !apierrors.IsNotFound(err) {
		t.Errorf("Get of another machine's serverless pod: %v, want NotFound", err)
	}
	if p, err := l.Pods("ns").Get("p0"); err != nil || p.Name != "p0" {
		t.Errorf("Get of its own serverless pod: %v, %v", p, err)
	}
}
