package node

import (
	"context"
	"net"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"
)

func countActions(cs *fake.Clientset, verb, resource, subresource string) int {
	n := 0
	for _, a := range cs.Actions() {
		if a.GetVerb() == verb && a.GetResource().Resource == resource && a.GetSubresource() == subresource {
			n++
		}
	}
	return n
}

func TestNodeStatusWrittenOnlyWhenChangedOrDue(t *testing.T) {
	ctx := context.Background()
	clk := clocktesting.NewFakeClock(t0.Add(123 * time.Millisecond))
	cs := fake.NewClientset()
	info := NodeInfo{Name: "gantry", InternalIP: net.IPv4(192, 168, 1, 2), CPUs: 2, MemoryBytes: 1 << 30, KubeletPort: 10250}
	r := &nodeReporter{client: cs, info: info, clock: clk}
	if err := r.register(ctx); err != nil {
		t.Fatal(err)
	}
	if got := countActions(cs, "patch", "nodes", "status"); got != 1 {
		t.Fatalf("after registering: %d status writes, want 1", got)
	}
	ready := func() corev1.NodeCondition { return nodeCondition(t, cs, corev1.NodeReady) }
	first := ready()

	// Checked every minute, unchanged: nothing written until five minutes have passed.
	for range 4 {
		clk.Step(nodeStatusCheckPeriod)
		if err := r.reportStatus(ctx, false); err != nil {
			t.Fatal(err)
		}
	}
	if got := countActions(cs, "patch", "nodes", "status"); got != 1 {
		t.Fatalf("after four unchanged minutes: %d status writes, want 1", got)
	}
	clk.Step(nodeStatusCheckPeriod)
	if err := r.reportStatus(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := countActions(cs, "patch", "nodes", "status"); got != 2 {
		t.Fatalf("after five minutes: %d status writes, want 2", got)
	}
	now := ready()
	if !now.LastTransitionTime.Equal(&first.LastTransitionTime) || !now.LastHeartbeatTime.After(first.LastHeartbeatTime.Time) {
		t.Errorf("Ready: transition %s → %s, heartbeat %s → %s; want the transition kept and the heartbeat moved",
			first.LastTransitionTime, now.LastTransitionTime, first.LastHeartbeatTime, now.LastHeartbeatTime)
	}

	// A change is written at the next check.
	r.info.CPUs = 4
	clk.Step(nodeStatusCheckPeriod)
	if err := r.reportStatus(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := countActions(cs, "patch", "nodes", "status"); got != 3 {
		t.Errorf("after a change: %d status writes, want 3", got)
	}
	// Registering again (a restart) leaves labels alone when they are there.
	if got := countActions(cs, "update", "nodes", ""); got != 0 {
		t.Errorf("%d updates of the node object, want none (its labels were set at creation)", got)
	}
}

func TestLeaseRenewedWithoutReading(t *testing.T) {
	ctx := context.Background()
	clk := clocktesting.NewFakeClock(t0)
	cs := fake.NewClientset()
	r := &nodeReporter{client: cs, info: NodeInfo{Name: "gantry"}, clock: clk}
	for range 6 {
		if err := r.renewLease(ctx); err != nil {
			t.Fatal(err)
		}
		clk.Step(leaseRenewInterval)
	}
	if gets, creates, updates := countActions(cs, "get", "leases", ""), countActions(cs, "create", "leases", ""), countActions(cs, "update", "leases", ""); gets != 1 || creates != 1 || updates != 5 {
		t.Errorf("lease: %d gets, %d creates, %d updates; want 1, 1, 5", gets, creates, updates)
	}
	lease, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, "gantry", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := lease.Spec.RenewTime.Time; !got.Equal(t0.Add(5 * leaseRenewInterval)) {
		t.Errorf("renew time %s, want %s", got, t0.Add(5*leaseRenewInterval))
	}
}

// TestDiskPressureCondition: under disk pressure the Node's DiskPressure condition is True
// at the next check, and False again once it is over.
func TestDiskPressureCondition(t *testing.T) {
	ctx := context.Background()
	clk := clocktesting.NewFakeClock(t0)
	cs := fake.NewClientset()
	pressure := false
	r := &nodeReporter{client: cs, info: NodeInfo{Name: "gantry"}, clock: clk, diskPressure: func() bool { return pressure }}
	if err := r.register(ctx); err != nil {
		t.Fatal(err)
	}
	disk := func() corev1.ConditionStatus { return nodeCondition(t, cs, corev1.NodeDiskPressure).Status }
	for _, want := range []bool{true, false} {
		pressure = want
		clk.Step(nodeStatusCheckPeriod)
		if err := r.reportStatus(ctx, false); err != nil {
			t.Fatal(err)
		}
		if got, wantStatus := disk(), corev1.ConditionStatus(map[bool]string{true: "True", false: "False"}[want]); got != wantStatus {
			t.Errorf("under pressure %v: DiskPressure %s; want %s", want, got, wantStatus)
		}
	}
}

// nodeCondition is the condition of type typ of the node "gantry" in cs.
func nodeCondition(t *testing.T, cs *fake.Clientset, typ corev1.NodeConditionType) corev1.NodeCondition {
	t.Helper()
	n, err := cs.CoreV1().Nodes().Get(context.Background(), "gantry", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range n.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	t.Fatalf("no %s condition", typ)
	return corev1.NodeCondition{}
}

// TestStatusWriteKeepsOthersTaints: the node lifecycle controller taints a new node not-ready
// between its registration and its first status; the node's status write must not undo the
// taint (NodeRestriction refuses a node's write that would, and the node would never report).
func TestStatusWriteKeepsOthersTaints(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset()
	info := NodeInfo{Name: "worker", InternalIP: net.IPv4(192, 168, 1, 3), CPUs: 2, MemoryBytes: 1 << 30, KubeletPort: 10250}
	r := &nodeReporter{client: cs, info: info, clock: clocktesting.NewFakeClock(t0)}
	if err := r.register(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := cs.CoreV1().Nodes().Get(ctx, "worker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.Taints = []corev1.Taint{{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoSchedule}}
	if _, err := cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := r.reportStatus(ctx, true); err != nil {
		t.Fatal(err)
	}
	n, err = cs.CoreV1().Nodes().Get(ctx, "worker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Spec.Taints) != 1 || n.Spec.Taints[0].Key != corev1.TaintNodeNotReady {
		t.Errorf("taints after the status write: %v; want the controller's not-ready taint kept", n.Spec.Taints)
	}
}
