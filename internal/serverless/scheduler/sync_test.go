package scheduler

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/gantry-run/gantry/internal/node"
	"github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// testScheduler is a Scheduler on client-go's fake clientset, its listers holding objs.
func testScheduler(t *testing.T, objs ...runtime.Object) (*Scheduler, *fake.Clientset, *record.FakeRecorder) {
	t.Helper()
	cs := fake.NewClientset(objs...)
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() == "binding" {
			return true, nil, nil
		}
		return false, nil, nil
	})
	s, err := New(Options{Client: cs, PodCIDR: "10.42.0.0/16", Agent: node.NodeInfo{Name: "gantry"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	pods := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	nodes := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Pod:
			_ = pods.Add(o)
		case *corev1.Node:
			_ = nodes.Add(o)
		}
	}
	s.pods, s.nodes = corelisters.NewPodLister(pods), corelisters.NewNodeLister(nodes)
	rec := record.NewFakeRecorder(10)
	s.recorder = rec
	s.placing.Store(true) // a single server's: Start would at once
	return s, cs, rec
}

func selectedPod(annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "uid-1", Annotations: annotations},
		Spec:       corev1.PodSpec{SchedulerName: v1alpha1.SchedulerName, Containers: []corev1.Container{{Name: "c", Image: "i"}}},
	}
}

func TestSyncRefusesAPodWithoutASize(t *testing.T) {
	s, cs, rec := testScheduler(t, selectedPod(nil))
	if err := s.sync(context.Background(), "ns/p"); err != nil {
		t.Fatal(err)
	}
	if ev := <-rec.Events; !strings.HasPrefix(ev, "Warning FailedScheduling") || !strings.Contains(ev, v1alpha1.CapacityProvisionedAnnotation) {
		t.Errorf("event %q, want FailedScheduling naming the annotation", ev)
	}
	got, err := cs.CoreV1().Pods("ns").Get(context.Background(), "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var cond corev1.PodCondition
	for _, c := range got.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			cond = c
		}
	}
	if cond.Status != corev1.ConditionFalse || cond.Reason != corev1.PodReasonUnschedulable || !strings.Contains(cond.Message, "missing") {
		t.Errorf("PodScheduled %+v, want False, Unschedulable, saying why", cond)
	}
	nodes, _ := cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if len(nodes.Items) != 0 {
		t.Errorf("%d nodes made for a refused pod", len(nodes.Items))
	}
}

func TestSyncMakesANodeAndBinds(t *testing.T) {
	taken := MakeNode(node.NodeInfo{Name: "gantry"}, selectedPod(nil), netip.MustParseAddr("10.42.128.1"), node.ServerlessSize{Capacity: v1alpha1.Capacity{MilliCPU: 250, MemoryMiB: 512}}, time.Unix(1e9, 0))
	taken.Labels[podUIDLabel] = "another"
	pod := selectedPod(map[string]string{v1alpha1.CapacityProvisionedAnnotation: "0.5vCPU 1GB"})
	s, cs, _ := testScheduler(t, pod, taken)
	if err := s.sync(context.Background(), "ns/p"); err != nil {
		t.Fatal(err)
	}
	n, err := cs.CoreV1().Nodes().Get(context.Background(), "serverless-ip-10-42-128-2", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the node at the next free address: %v", err)
	}
	if n.Labels[podUIDLabel] != "uid-1" || n.Status.Capacity.Cpu().MilliValue() != 500 {
		t.Errorf("node labels %v, capacity %v", n.Labels, n.Status.Capacity)
	}
	var bound string
	for _, a := range cs.Actions() {
		if c, ok := a.(k8stesting.CreateAction); ok && a.GetSubresource() == "binding" {
			bound = c.GetObject().(*corev1.Binding).Target.Name
		}
	}
	if bound != n.Name {
		t.Errorf("bound to %q, want %q", bound, n.Name)
	}
}

// TestStandbyKeepsUpOnlyItsOwnNodes: a scheduler that does not hold the placement's lease
// leaves a pending pod alone; of the serverless nodes whose pods are gone it removes only its
// own machine's (addresses in its range), and it renews only their leases.
func TestStandbyKeepsUpOnlyItsOwnNodes(t *testing.T) {
	size := node.ServerlessSize{Capacity: v1alpha1.Capacity{MilliCPU: 250, MemoryMiB: 512}}
	gone := selectedPod(nil)
	gone.UID = "gone"
	mine := MakeNode(node.NodeInfo{Name: "gantry"}, gone, netip.MustParseAddr("10.42.128.7"), size, time.Unix(1e9, 0))
	theirs := MakeNode(node.NodeInfo{Name: "other"}, gone, netip.MustParseAddr("10.43.128.7"), size, time.Unix(1e9, 0))
	pending := selectedPod(map[string]string{v1alpha1.CapacityProvisionedAnnotation: "0.5vCPU 1GB"})
	s, cs, _ := testScheduler(t, pending, mine, theirs)
	s.placing.Store(false)
	ctx := context.Background()

	if err := s.sync(ctx, "ns/p"); err != nil {
		t.Fatal(err)
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() == "create" || a.GetVerb() == "update" {
			t.Errorf("a standby scheduler wrote for a pending pod: %s %s/%s", a.GetVerb(), a.GetResource().Resource, a.GetSubresource())
		}
	}

	s.renewLeases(ctx)
	leases, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(leases.Items) != 1 || leases.Items[0].Name != mine.Name {
		t.Errorf("leases %v, want only %s's", leases.Items, mine.Name)
	}

	if err := s.collect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Nodes().Get(ctx, mine.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("its own node of a pod that is gone: %v, want removed", err)
	}
	if _, err := cs.CoreV1().Nodes().Get(ctx, theirs.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("another machine's node: %v, want left to its scheduler", err)
	}
}
