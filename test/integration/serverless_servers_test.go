package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/leaderelect"
	"github.com/gantry-run/gantry/internal/node"
	"github.com/gantry-run/gantry/internal/sandbox"
	"github.com/gantry-run/gantry/internal/serverless/scheduler"
	"github.com/gantry-run/gantry/internal/testenv"
	"github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// TestServerlessSchedulersOfSeveralServers: two serverless schedulers, as two servers of a
// cluster that each run their node, on the one API server. Only the one holding the lease
// places a pod (on a node of its own machine's range, and no other node is made for it);
// each renews the leases of its own machine's nodes only; once the first stops, the second
// takes the lease and places the next pod on its machine; the first's node is left to it.
// The schedulers place pods of a scheduler name of their own, beside the server's.
func TestServerlessSchedulersOfSeveralServers(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	const schedulerName = "gantry-serverless-servers-test"
	lease := "test-serverless-servers"
	ns := metav1.NamespaceSystem // the pods webhook leaves the size annotation of pods here

	type machine struct {
		name  string
		nodes netip.Prefix
		clock *clocktesting.FakeClock
		stop  context.CancelFunc
		done  chan error
	}
	start := func(name, podCIDR string, at time.Time) *machine {
		t.Helper()
		r, err := sandbox.ServerlessRange(netip.MustParsePrefix(podCIDR))
		if err != nil {
			t.Fatal(err)
		}
		m := &machine{name: name, nodes: r, clock: clocktesting.NewFakeClock(at), done: make(chan error, 1)}
		s, err := scheduler.New(scheduler.Options{
			Client:        env.Client,
			PodCIDR:       podCIDR,
			Agent:         node.NodeInfo{Name: name, InternalIP: net.ParseIP("127.0.0.1"), KubeletPort: 10250, CPUs: 1, MemoryBytes: 1 << 30},
			Clock:         m.clock,
			SchedulerName: schedulerName,
			Elect: func(ctx context.Context, place func(context.Context) error) error {
				return leaderelect.Run(ctx, env.Config, lease, place)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		m.stop = func() {
			cancel()
			select {
			case err := <-m.done:
				if err != nil {
					t.Errorf("scheduler of %s: %v", name, err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("scheduler of %s did not stop", name)
			}
		}
		go func() { m.done <- s.Start(runCtx) }()
		select {
		case <-s.Ready():
		case err := <-m.done:
			t.Fatalf("scheduler of %s: %v", name, err)
		case <-time.After(30 * time.Second):
			t.Fatalf("scheduler of %s not ready", name)
		}
		t.Cleanup(func() {
			if runCtx.Err() == nil {
				m.stop()
			}
		})
		return m
	}
	pod := func(name string) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
				Annotations: map[string]string{v1alpha1.CapacityProvisionedAnnotation: "0.25vCPU 0.5GB"}},
			Spec: corev1.PodSpec{SchedulerName: schedulerName, Containers: []corev1.Container{{Name: "app", Image: "example.test/app"}}},
		}
		created, err := env.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			// No node agent runs these pods: nothing would confirm a graceful deletion.
			_ = env.Client.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
			nodes, _ := env.Client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{LabelSelector: v1alpha1.GroupName + "/pod-uid=" + string(created.UID)})
			for _, n := range nodes.Items {
				_ = env.Client.CoreV1().Nodes().Delete(context.Background(), n.Name, metav1.DeleteOptions{})
			}
		})
		return created
	}
	// placed waits for p to be bound, then checks that its node is one of m's and the only
	// node made for it.
	placed := func(p *corev1.Pod, m *machine) string {
		t.Helper()
		var nodeName string
		waitFor(t, "pod "+p.Name+" bound", 30*time.Second, func(ctx context.Context) (bool, error) {
			got, err := env.Client.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			nodeName = got.Spec.NodeName
			return nodeName != "", errors.New("not bound")
		})
		if !node.ServesServerlessNode(m.nodes, nodeName) {
			t.Errorf("pod %s bound to %s, want a node of %s (%s)", p.Name, nodeName, m.name, m.nodes)
		}
		// A node made by the one not placing would appear about as soon: give it a moment.
		time.Sleep(time.Second)
		nodes, err := env.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.GroupName + "/pod-uid=" + string(p.UID)})
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes.Items) != 1 || nodes.Items[0].Name != nodeName {
			var names []string
			for _, n := range nodes.Items {
				names = append(names, n.Name)
			}
			t.Errorf("nodes made for pod %s: %v, want only %s", p.Name, names, nodeName)
		}
		return nodeName
	}
	// renewedAt waits for the lease of node name to be renewed at want (its machine's clock).
	renewedAt := func(name string, want time.Time) {
		t.Helper()
		waitFor(t, "lease of "+name+" renewed at "+want.String(), 30*time.Second, func(ctx context.Context) (bool, error) {
			l, err := env.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return false, err
			}
			if err != nil {
				return false, err
			}
			got := l.Spec.RenewTime.Time
			return got.Equal(want), fmt.Errorf("renewed at %v", got)
		})
	}
	holder := func() string {
		l, err := env.Client.CoordinationV1().Leases(metav1.NamespaceSystem).Get(ctx, lease, metav1.GetOptions{})
		if err != nil {
			return ""
		}
		return ptr.Deref(l.Spec.HolderIdentity, "")
	}

	a := start("machine-a", "10.245.0.0/24", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	waitFor(t, "machine-a holds the lease", 30*time.Second, func(context.Context) (bool, error) {
		return holder() != "", errors.New("no holder")
	})
	b := start("machine-b", "10.245.1.0/24", time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC))
	t.Cleanup(func() {
		_ = env.Client.CoordinationV1().Leases(metav1.NamespaceSystem).Delete(context.Background(), lease, metav1.DeleteOptions{})
	})

	first := pod("servers-first")
	nodeA := placed(first, a)
	renewedAt(nodeA, a.clock.Now())
	// b's heartbeat: it renews its own nodes (none yet), never a's.
	b.clock.Step(time.Minute)
	time.Sleep(time.Second)
	renewedAt(nodeA, a.clock.Now())

	// a stops and hands the lease over: b places the next pod, on its own machine.
	a.stop()
	second := pod("servers-second")
	nodeB := placed(second, b)
	renewedAt(nodeB, b.clock.Now())
	b.clock.Step(time.Minute)
	renewedAt(nodeB, b.clock.Now())
	renewedAt(nodeA, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) // a's, untouched by b

	// A's pod gone, its node stays for a's scheduler to remove: b removes only its own.
	if err := env.Client.CoreV1().Pods(ns).Delete(ctx, first.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.CoreV1().Pods(ns).Delete(ctx, second.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "machine-b removes its node "+nodeB, 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := env.Client.CoreV1().Nodes().Get(ctx, nodeB, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, fmt.Errorf("still there (%w)", err)
	})
	if _, err := env.Client.CoreV1().Nodes().Get(ctx, nodeA, metav1.GetOptions{}); err != nil {
		t.Errorf("machine-a's node %s, whose scheduler is stopped: %v; want it left to machine-a", nodeA, err)
	}
}
