package scheduler

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/node"
	"github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

func TestAddressesRoundRobinSkippingTheTaken(t *testing.T) {
	a := newAddresses(netip.MustParsePrefix("10.42.128.0/30")) // .1 and .2
	taken := map[netip.Addr]bool{}
	used := func(ip netip.Addr) bool { return taken[ip] }
	var got []string
	for range 2 {
		ip, err := a.pick(used)
		if err != nil {
			t.Fatal(err)
		}
		taken[ip] = true
		got = append(got, ip.String())
	}
	if strings.Join(got, " ") != "10.42.128.1 10.42.128.2" {
		t.Errorf("picked %v", got)
	}
	if _, err := a.pick(used); !errors.Is(err, ErrNoAddress) {
		t.Errorf("a full range: got %v, want ErrNoAddress", err)
	}
	// .1 is given back: it is the next, since the cursor wrapped.
	delete(taken, netip.MustParseAddr("10.42.128.1"))
	if ip, err := a.pick(used); err != nil || ip.String() != "10.42.128.1" {
		t.Errorf("got %v, %v, want 10.42.128.1", ip, err)
	}
}

func TestAddressesDoNotReuseTheLastFreedFirst(t *testing.T) {
	a := newAddresses(netip.MustParsePrefix("10.42.128.0/17"))
	none := func(netip.Addr) bool { return false }
	first, _ := a.pick(none)
	second, _ := a.pick(none)
	if first.String() != "10.42.128.1" || second.String() != "10.42.128.2" {
		t.Fatalf("picked %s, %s", first, second)
	}
	// first is free again, but the next pick moves on.
	if third, _ := a.pick(none); third.String() != "10.42.128.3" {
		t.Errorf("picked %s, want 10.42.128.3", third)
	}
	if a.last.String() != "10.42.255.254" {
		t.Errorf("last address %s, want 10.42.255.254 (not the pod CIDR's broadcast)", a.last)
	}
}

func TestMakeNode(t *testing.T) {
	agent := node.NodeInfo{Name: "gantry", InternalIP: net.ParseIP("192.0.2.7"), KubeletPort: 10250, CPUs: 2, MemoryBytes: 4 << 30,
		Version: "v1.37.2-gantry", Runtime: "runc", DiskPressure: true}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "uid-1",
		Labels: map[string]string{v1alpha1.ProfileLabel: "web"}}}
	size := node.ServerlessSize{Capacity: v1alpha1.Capacity{MilliCPU: 250, MemoryMiB: 512}}
	n := MakeNode(agent, pod, netip.MustParseAddr("10.42.128.5"), size, time.Unix(1e9, 0))

	if n.Name != "serverless-ip-10-42-128-5" {
		t.Errorf("name %q", n.Name)
	}
	for k, v := range map[string]string{
		v1alpha1.ComputeTypeTaintKey: v1alpha1.ComputeTypeTaintValue, v1alpha1.ProfileLabel: "web", podUIDLabel: "uid-1",
		corev1.LabelHostname: n.Name, corev1.LabelOSStable: "linux", "node.kubernetes.io/instance-type": instanceType,
	} {
		if n.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, n.Labels[k], v)
		}
	}
	if n.Annotations[v1alpha1.CapacityProvisionedAnnotation] != "0.25vCPU 0.5GB" {
		t.Errorf("annotations %v", n.Annotations)
	}
	if len(n.Spec.Taints) != 1 || n.Spec.Taints[0] != (corev1.Taint{Key: v1alpha1.ComputeTypeTaintKey, Value: v1alpha1.ComputeTypeTaintValue, Effect: corev1.TaintEffectNoSchedule}) {
		t.Errorf("taints %v", n.Spec.Taints)
	}
	for _, l := range []corev1.ResourceList{n.Status.Capacity, n.Status.Allocatable} {
		if l.Cpu().MilliValue() != 250 || l.Memory().Value() != 512<<20 || l.Pods().Value() != 1 || l.StorageEphemeral().Value() != 20<<30 {
			t.Errorf("resources %v, want 250m, 512Mi, 20Gi, 1 pod", l)
		}
	}
	if len(n.Status.Addresses) == 0 || n.Status.Addresses[0] != (corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: "192.0.2.7"}) {
		t.Errorf("addresses %v, want the agent's InternalIP first (the API server reaches its kubelet API there)", n.Status.Addresses)
	}
	if n.Status.DaemonEndpoints.KubeletEndpoint.Port != 10250 {
		t.Errorf("kubelet port %d", n.Status.DaemonEndpoints.KubeletEndpoint.Port)
	}
	for _, c := range n.Status.Conditions {
		want := corev1.ConditionFalse
		if c.Type == corev1.NodeReady {
			want = corev1.ConditionTrue
		}
		if c.Status != want {
			t.Errorf("condition %s = %s, want %s", c.Type, c.Status, want)
		}
	}

	bad := pod.DeepCopy()
	bad.Labels[v1alpha1.ProfileLabel] = strings.Repeat("x", 70)
	if _, ok := MakeNode(agent, bad, netip.MustParseAddr("10.42.128.6"), size, time.Now()).Labels[v1alpha1.ProfileLabel]; ok {
		t.Error("a profile that is no label value was copied to the node")
	}
}

func TestAdmit(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{v1alpha1.CapacityProvisionedAnnotation: "1vCPU 2GB"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}
	if size, msg := admit(pod); msg != "" || size.Capacity != (v1alpha1.Capacity{MilliCPU: 1000, MemoryMiB: 2048}) {
		t.Errorf("admit = %v, %q", size, msg)
	}
	priv := pod.DeepCopy()
	priv.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	if _, msg := admit(priv); !strings.Contains(msg, "spec.containers[0].securityContext.privileged") {
		t.Errorf("a privileged pod: %q", msg)
	}
	none := pod.DeepCopy()
	none.Annotations = nil
	if _, msg := admit(none); !strings.Contains(msg, v1alpha1.CapacityProvisionedAnnotation) {
		t.Errorf("no capacity: %q", msg)
	}
}
