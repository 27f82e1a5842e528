// Package serverless benchmarks the serverless placement against a real in-process Gantry
// (issue 11's performance section):
//
//   - BenchmarkPlacement: pods created one at a time, alternately with the serverless
//     scheduler (a Node of their own, made and bound per pod) and with kube-scheduler (the
//     shared node), from create to Ready with the image cached: the cost the placement adds
//     to a cold start, side by side in one run.
//   - BenchmarkBurst: 50 serverless pods created at once: create → Ready p50/p95, then the
//     time from their deletion until all their Nodes are gone.
//
// A ServerlessProfile selects the pods labelled serverless=yes of the benchmark's namespace;
// the admission webhook marks them, as it marks any pod a profile selects.
//
//	GANTRY_TEST_BRIDGE=gantry-h2 GANTRY_TEST_POD_CIDR=10.249.0.0/16 \
//	  go test ./bench/serverless -run '^$' -bench . -benchtime 1x -timeout 20m
package serverless

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/poll"
	"github.com/gantry-run/gantry/internal/testenv"
	"github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	// placementPods is how many pods of each kind BenchmarkPlacement starts.
	placementPods = 20
	// burstPods is how many pods BenchmarkBurst creates at once.
	burstPods = 50
)

func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func pod(name, image string, serverless bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			Containers: []corev1.Container{{
				Name: "hello", Image: image,
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt(8080)}},
					PeriodSeconds: 1,
				},
			}},
		},
	}
	if serverless {
		p.Labels = map[string]string{"serverless": "yes"}
	}
	return p
}

// namespaces counts the namespaces the benchmarks made, so each run (-count) gets new ones
// while the last run's are still being deleted.
var namespaces atomic.Int64

// namespace creates a namespace named prefix-<n> and a ServerlessProfile of that name that
// selects its pods labelled serverless=yes, waits for the profile to be Active, and returns
// the name.
func namespace(b *testing.B, env *testenv.Env, prefix string) string {
	name := fmt.Sprintf("%s-%d", prefix, namespaces.Add(1))
	ctx := context.Background()
	if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	poll.Until(b, "the default ServiceAccount of "+name, time.Minute, func(ctx context.Context) (bool, error) {
		_, err := env.Client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, err
	})
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		b.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: s})
	if err != nil {
		b.Fatal(err)
	}
	p := &v1alpha1.ServerlessProfile{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.ServerlessProfileSpec{Selectors: []v1alpha1.Selector{{Namespace: name, Labels: map[string]string{"serverless": "yes"}}}}}
	if err := c.Create(ctx, p); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Delete(context.Background(), p) })
	poll.Until(b, "ServerlessProfile "+name+" Active", time.Minute, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKey{Name: name}, p); err != nil {
			return false, err
		}
		return p.Status.Phase == v1alpha1.PhaseActive, fmt.Errorf("phase %q", p.Status.Phase)
	})
	return name
}

// watchReady reports, for each pod of ns, when it was first seen Ready; boundAt when it was
// first seen bound to a node.
func watchReady(ctx context.Context, b *testing.B, env *testenv.Env, ns string) (readyAt func(name string, timeout time.Duration) time.Time, boundAt func(name string) time.Time) {
	w, err := env.Client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	at, bound := map[string]time.Time{}, map[string]time.Time{}
	changed := sync.NewCond(&mu)
	go func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			if p.Spec.NodeName != "" {
				mu.Lock()
				if _, seen := bound[p.Name]; !seen {
					bound[p.Name] = time.Now()
				}
				mu.Unlock()
			}
			if !ready(p) {
				continue
			}
			mu.Lock()
			if _, seen := at[p.Name]; !seen {
				at[p.Name] = time.Now()
				changed.Broadcast()
			}
			mu.Unlock()
		}
	}()
	go func() { <-ctx.Done(); w.Stop(); mu.Lock(); changed.Broadcast(); mu.Unlock() }()
	boundAt = func(name string) time.Time {
		mu.Lock()
		defer mu.Unlock()
		return bound[name]
	}
	return func(name string, timeout time.Duration) time.Time {
		deadline := time.Now().Add(timeout)
		timer := time.AfterFunc(timeout, func() { mu.Lock(); changed.Broadcast(); mu.Unlock() })
		defer timer.Stop()
		mu.Lock()
		defer mu.Unlock()
		for {
			if t, ok := at[name]; ok {
				return t
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				b.Fatalf("pod %s/%s not Ready within %v", ns, name, timeout)
			}
			changed.Wait()
		}
	}, boundAt
}

func BenchmarkPlacement(b *testing.B) {
	env := testenv.Get(b)
	testenv.RequireNode(b)
	img := env.Image(b, "hello")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := env.Server.Store.Pull(ctx, img); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		ns := namespace(b, env, "bench-placement")
		readyAt, boundAt := watchReady(ctx, b, env, ns)
		var shared, serverless, sharedBound, serverlessBound []time.Duration
		for j := range 2 * placementPods {
			sl := j%2 == 0
			name := fmt.Sprintf("p%d", j)
			start := time.Now()
			if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod(name, img, sl), metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
			d := readyAt(name, 2*time.Minute).Sub(start)
			bd := boundAt(name).Sub(start)
			if sl {
				serverless, serverlessBound = append(serverless, d), append(serverlessBound, bd)
			} else {
				shared, sharedBound = append(shared, d), append(sharedBound, bd)
			}
			// One pod at a time: the next starts on a quiet node.
			if err := env.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(ms(percentile(shared, 50)), "shared-p50-ms")
		b.ReportMetric(ms(percentile(serverless, 50)), "serverless-p50-ms")
		b.ReportMetric(ms(percentile(shared, 95)), "shared-p95-ms")
		b.ReportMetric(ms(percentile(serverless, 95)), "serverless-p95-ms")
		b.ReportMetric(ms(percentile(serverless, 50)-percentile(shared, 50)), "added-p50-ms")
		b.ReportMetric(ms(percentile(sharedBound, 50)), "shared-bound-p50-ms")
		b.ReportMetric(ms(percentile(serverlessBound, 50)), "serverless-bound-p50-ms")
		_ = env.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	}
}

func BenchmarkBurst(b *testing.B) {
	env := testenv.Get(b)
	testenv.RequireNode(b)
	img := env.Image(b, "hello")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := env.Server.Store.Pull(ctx, img); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		ns := namespace(b, env, "bench-burst")
		readyAt, _ := watchReady(ctx, b, env, ns)
		start := make([]time.Time, burstPods)
		var wg sync.WaitGroup
		for j := range burstPods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start[j] = time.Now()
				if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod(fmt.Sprintf("p%d", j), img, true), metav1.CreateOptions{}); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		var ds []time.Duration
		for j := range burstPods {
			ds = append(ds, readyAt(fmt.Sprintf("p%d", j), 5*time.Minute).Sub(start[j]))
		}
		b.ReportMetric(ms(percentile(ds, 50)), "ready-p50-ms")
		b.ReportMetric(ms(percentile(ds, 95)), "ready-p95-ms")
		b.ReportMetric(ms(percentile(ds, 100)), "ready-max-ms")

		// Delete them all: the time from the deletion, and from the last pod gone, to the last
		// Node gone.
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		nodes := map[string]bool{}
		for _, p := range pods.Items {
			nodes[p.Spec.NodeName] = true
		}
		if len(nodes) != burstPods {
			b.Errorf("%d pods on %d nodes, want one node each", burstPods, len(nodes))
		}
		deleted := time.Now()
		if err := env.Client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			b.Fatal(err)
		}
		var podsGone, nodesGone time.Time
		poll.Until(b, "the pods gone", 3*time.Minute, func(ctx context.Context) (bool, error) {
			l, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil || len(l.Items) > 0 {
				return false, err
			}
			podsGone = time.Now()
			return true, nil
		})
		poll.Until(b, "their nodes gone", time.Minute, func(ctx context.Context) (bool, error) {
			for n := range nodes {
				if _, err := env.Client.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
					return false, nil
				}
			}
			nodesGone = time.Now()
			return true, nil
		})
		left, _ := env.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: labels.Set{v1alpha1.ComputeTypeTaintKey: v1alpha1.ComputeTypeTaintValue}.String()})
		b.ReportMetric(ms(nodesGone.Sub(podsGone)), "nodes-gone-after-pods-ms")
		b.ReportMetric(ms(nodesGone.Sub(deleted)), "nodes-gone-after-delete-ms")
		b.ReportMetric(float64(len(left.Items)), "serverless-nodes-left")
		_ = env.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	}
}
