package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/poll"
	"github.com/gantry-run/gantry/internal/standalone"
	"github.com/gantry-run/gantry/internal/testenv"
	"github.com/gantry-run/gantry/pkg/apis/config"
	"github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// placementProfile creates a ServerlessProfile selecting the pods of ns labelled
// serverless=yes, waits for it to be Active, and deletes it when the test ends.
func placementProfile(t *testing.T, env *testenv.Env, ns string) string {
	t.Helper()
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		t.Fatal(err)
	}
	p := &v1alpha1.ServerlessProfile{ObjectMeta: metav1.ObjectMeta{Name: ns},
		Spec: v1alpha1.ServerlessProfileSpec{Selectors: []v1alpha1.Selector{{Namespace: ns, Labels: map[string]string{"serverless": "yes"}}}}}
	if err := c.Create(context.Background(), p); err != nil {
		t.Fatalf("creating ServerlessProfile %s: %v", ns, err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), p) })
	waitFor(t, "ServerlessProfile "+ns+" Active", 30*time.Second, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKey{Name: ns}, p); err != nil {
			return false, err
		}
		return p.Status.Phase == v1alpha1.PhaseActive, fmt.Errorf("phase %q", p.Status.Phase)
	})
	return p.Name
}

// serverlessPod is a pod the profile of placementProfile selects.
func serverlessPod(name, image string, resources corev1.ResourceList) *corev1.Pod {
	pod := podWith(name, corev1.Container{Name: "hello", Image: image,
		Resources:      corev1.ResourceRequirements{Requests: resources, Limits: resources},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intOrStr(8080)}}, PeriodSeconds: 1}})
	pod.Labels = map[string]string{"serverless": "yes"}
	return pod
}

// TestServerlessPodGetsANodeOfItsOwn: a pod with the serverless fields gets its own Node,
// named after its address, tainted and sized to it; it runs within its provisioned limits,
// its logs come through the API server, and its Node goes within 5 s of it. A normal pod
// still lands on the shared node.
func TestServerlessPodGetsANodeOfItsOwn(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	ctx := context.Background()
	image := env.Image(t, "hello")

	profile := placementProfile(t, env, ns)
	createPod(t, env, ns, serverlessPod("sl-a", image, nil))
	createPod(t, env, ns, serverlessPod("sl-b", image, corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("512Mi")}))
	createPod(t, env, ns, podWith("shared", corev1.Container{Name: "hello", Image: image}))
	a := waitPod(t, env, ns, "sl-a", "running", 90*time.Second, running)
	b := waitPod(t, env, ns, "sl-b", "running", 90*time.Second, running)
	shared := waitPod(t, env, ns, "shared", "running", 90*time.Second, running)

	if shared.Spec.NodeName != standalone.DefaultNodeName {
		t.Errorf("the normal pod is on %q, want the shared node %q", shared.Spec.NodeName, standalone.DefaultNodeName)
	}
	if a.Spec.NodeName == b.Spec.NodeName {
		t.Errorf("two serverless pods share node %s", a.Spec.NodeName)
	}
	sizes := map[string]v1alpha1.Capacity{}
	for _, p := range []*corev1.Pod{a, b} {
		c, err := v1alpha1.ParseCapacity(p.Annotations[v1alpha1.CapacityProvisionedAnnotation])
		if err != nil {
			t.Fatalf("pod %s: %v", p.Name, err)
		}
		sizes[p.Name] = c
		want := v1alpha1.NodeNamePrefix + strings.ReplaceAll(p.Status.PodIP, ".", "-")
		if p.Spec.NodeName != want {
			t.Errorf("pod %s (IP %s) is on node %q, want %q", p.Name, p.Status.PodIP, p.Spec.NodeName, want)
		}
	}

	t.Run("the node is tainted, labelled and sized to the pod", func(t *testing.T) {
		// The node lifecycle controller taints a new node not-ready until it sees the node's
		// Ready status, then lifts that taint; the node's status writes leave it to it.
		taint := corev1.Taint{Key: v1alpha1.ComputeTypeTaintKey, Value: v1alpha1.ComputeTypeTaintValue, Effect: corev1.TaintEffectNoSchedule}
		var n *corev1.Node
		poll.Until(t, "the serverless node tainted with its compute type only", 30*time.Second, func(ctx context.Context) (bool, error) {
			var err error
			if n, err = env.Client.CoreV1().Nodes().Get(ctx, a.Spec.NodeName, metav1.GetOptions{}); err != nil {
				return false, err
			}
			if len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Key != taint.Key || n.Spec.Taints[0].Value != taint.Value || n.Spec.Taints[0].Effect != taint.Effect {
				return false, fmt.Errorf("taints %v, want only %v", n.Spec.Taints, taint)
			}
			return true, nil
		})
		if n.Labels[v1alpha1.ProfileLabel] != profile || n.Labels[v1alpha1.ComputeTypeTaintKey] != v1alpha1.ComputeTypeTaintValue {
			t.Errorf("labels %v", n.Labels)
		}
		size := sizes[a.Name]
		if n.Annotations[v1alpha1.CapacityProvisionedAnnotation] != size.String() {
			t.Errorf("annotations %v, want the pod's size %s", n.Annotations, size)
		}
		for name, l := range map[string]corev1.ResourceList{"capacity": n.Status.Capacity, "allocatable": n.Status.Allocatable} {
			if l.Cpu().MilliValue() != size.MilliCPU || l.Memory().Value() != size.MemoryBytes() || l.Pods().Value() != 1 {
				t.Errorf("%s %v, want %s and 1 pod", name, l, size)
			}
		}
		if !nodeReady(n) {
			t.Errorf("node %s is not Ready: %v", n.Name, n.Status.Conditions)
		}
	})

	t.Run("the node has a lease, renewed", func(t *testing.T) {
		var first *metav1.MicroTime
		waitFor(t, "the lease of "+b.Spec.NodeName+" renewed", 30*time.Second, func(ctx context.Context) (bool, error) {
			l, err := env.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, b.Spec.NodeName, metav1.GetOptions{})
			if err != nil || l.Spec.RenewTime == nil {
				return false, err
			}
			if first == nil {
				first = l.Spec.RenewTime
			}
			return l.Spec.RenewTime.After(first.Time), nil
		})
	})

	t.Run("the pod's cgroup holds the provisioned size", func(t *testing.T) {
		if sizes[a.Name] == sizes[b.Name] {
			t.Errorf("both pods were given %s; the test wants two sizes", sizes[a.Name])
		}
		for _, tt := range []struct {
			pod       *corev1.Pod
			cpuMillis int64
			memory    int64
		}{{a, sizes[a.Name].MilliCPU, sizes[a.Name].MemoryBytes()}, {b, sizes[b.Name].MilliCPU, sizes[b.Name].MemoryBytes()}} {
			pid := containerPid(t, env, tt.pod, "hello")
			// The pod's cgroup is the container's parent.
			cpu := filepath.Dir(cgroupDir(t, pid, "cpu"))
			mem := filepath.Dir(cgroupDir(t, pid, "memory"))
			quota, period := readInt(t, filepath.Join(cpu, "cpu.cfs_quota_us")), readInt(t, filepath.Join(cpu, "cpu.cfs_period_us"))
			if got := quota * 1000 / period; got != tt.cpuMillis {
				t.Errorf("pod %s: CPU quota %d/%d = %dm, want %dm", tt.pod.Name, quota, period, got, tt.cpuMillis)
			}
			if got := readInt(t, filepath.Join(mem, "memory.limit_in_bytes")); got != tt.memory {
				t.Errorf("pod %s: memory limit %d, want %d", tt.pod.Name, got, tt.memory)
			}
		}
	})

	t.Run("logs through the API server", func(t *testing.T) {
		waitFor(t, "the container's log line", 30*time.Second, func(ctx context.Context) (bool, error) {
			out, err := env.Client.CoreV1().Pods(ns).GetLogs(a.Name, &corev1.PodLogOptions{Container: "hello"}).DoRaw(ctx)
			if err != nil {
				return false, err
			}
			return len(out) > 0, nil
		})
	})

	t.Run("a pod reaches another by its address", func(t *testing.T) {
		if got := httpGet(t, "http://"+b.Status.PodIP+":8080/"); !strings.Contains(got, "Hello") {
			t.Errorf("GET %s = %q", b.Status.PodIP, got)
		}
	})

	t.Run("the node is gone within 5 s of the pod", func(t *testing.T) {
		if err := env.Client.CoreV1().Pods(ns).Delete(ctx, a.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "pod "+a.Name+" gone", 30*time.Second, func(ctx context.Context) (bool, error) {
			_, err := env.Client.CoreV1().Pods(ns).Get(ctx, a.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		gone := time.Now()
		waitFor(t, "node "+a.Spec.NodeName+" gone", 10*time.Second, func(ctx context.Context) (bool, error) {
			_, err := env.Client.CoreV1().Nodes().Get(ctx, a.Spec.NodeName, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		if d := time.Since(gone); d > 5*time.Second {
			t.Errorf("the node went %v after its pod, want within 5 s", d)
		}
	})
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// TestSharedNodeIsFinite: the shared node advertises the machine less its reserve, and a
// pod that asks for more stays Pending with kube-scheduler's message.
func TestSharedNodeIsFinite(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	ctx := context.Background()
	n, err := env.Client.CoreV1().Nodes().Get(ctx, standalone.DefaultNodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	capCPU, allocCPU := n.Status.Capacity.Cpu().MilliValue(), n.Status.Allocatable.Cpu().MilliValue()
	if allocCPU >= capCPU || allocCPU <= 0 {
		t.Errorf("allocatable CPU %dm, want below the capacity %dm and above zero", allocCPU, capCPU)
	}
	if n.Status.Allocatable.Memory().Cmp(*n.Status.Capacity.Memory()) >= 0 {
		t.Errorf("allocatable memory %v, want below the capacity %v", n.Status.Allocatable.Memory(), n.Status.Capacity.Memory())
	}
	big := podWith("too-big", corev1.Container{Name: "c", Image: "example.invalid/x", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: *resource.NewMilliQuantity(capCPU, resource.DecimalSI)}}})
	big.Spec.TerminationGracePeriodSeconds = ptr.To[int64](0)
	createPod(t, env, ns, big)
	p := waitPod(t, env, ns, "too-big", "unschedulable", 30*time.Second, func(p *corev1.Pod) bool { return unschedulable(*p) })
	var msg string
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			msg = c.Message
		}
	}
	if !strings.Contains(msg, "Insufficient cpu") {
		t.Errorf("PodScheduled message %q, want kube-scheduler's Insufficient cpu", msg)
	}
}

// TestServerlessPodEvictedPastItsStorage: a serverless pod gets the ephemeral storage
// config-serverless provisions (here 24 MiB, so the test is short); one that writes past it
// (its logs count) is evicted with the reason in its status, and its Node goes with it.
func TestServerlessPodEvictedPastItsStorage(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	placementProfile(t, env, ns)
	if err := setConfig(t, env, config.ServerlessConfigName, map[string]string{"ephemeral-storage-default": "24Mi"}); err != nil {
		t.Fatal(err)
	}
	image := env.Image(t, "runtime")
	var pod *corev1.Pod
	waitFor(t, "a serverless pod provisioned 24Mi of storage", 30*time.Second, func(ctx context.Context) (bool, error) {
		name := fmt.Sprintf("chatty-%d", time.Now().UnixNano()%1e6)
		p := podWith(name, corev1.Container{Name: "chatty", Image: image, Args: []string{"-log-kib-per-s", "1024"}})
		p.Labels = map[string]string{"serverless": "yes"}
		created, err := env.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		if got := created.Annotations[v1alpha1.EphemeralStorageProvisionedAnnotation]; got != "24Mi" {
			_ = env.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
			return false, fmt.Errorf("provisioned %q", got)
		}
		pod = created
		return true, nil
	})
	pod = waitPod(t, env, ns, pod.Name, "running", 90*time.Second, running)
	node := pod.Spec.NodeName
	if !strings.HasPrefix(node, v1alpha1.NodeNamePrefix) {
		t.Fatalf("the pod runs on %q, not a serverless node", node)
	}
	// The node measures disk use once a minute: 24 MiB at 1 MiB/s, then at most a minute.
	evicted := waitPod(t, env, ns, pod.Name, "evicted", 3*time.Minute, func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodFailed
	})
	if evicted.Status.Reason != "Evicted" || !strings.Contains(evicted.Status.Message, v1alpha1.EphemeralStorageProvisionedAnnotation) {
		t.Errorf("status %q: %q; want Evicted, naming %s", evicted.Status.Reason, evicted.Status.Message, v1alpha1.EphemeralStorageProvisionedAnnotation)
	}
	t.Logf("evicted: %s", evicted.Status.Message)
	if err := env.Client.CoreV1().Pods(ns).Delete(context.Background(), pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the evicted pod's Node gone", 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := env.Client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, fmt.Errorf("node %s: %w", node, err)
	})
}
