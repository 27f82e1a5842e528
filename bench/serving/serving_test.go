// Package serving benchmarks the serving controllers against a real in-process Gantry
// (internal/testenv): how fast a new Service gets its children, side by side with the
// built-in Deployment → ReplicaSet path, and the CPU the process burns while 1000 Services
// sit idle, side by side with the same process holding none.
//
//	go test ./bench/serving -run '^$' -bench . -benchtime 1x -timeout 30m
package serving

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/proccpu"
	"github.com/gantry-run/gantry/internal/testenv"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const services = 20

func newNamespace(b *testing.B, env *testenv.Env, name string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := env.Ctrl.Create(context.Background(), ns); err != nil {
		b.Fatal(err)
	}
	return name
}

func service(ns, name, image string) *servingv1.Service {
	return &servingv1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: servingv1.ServiceSpec{ConfigurationSpec: servingv1.ConfigurationSpec{Template: servingv1.RevisionTemplateSpec{
			Spec: servingv1.RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: image}}}},
		}}},
	}
}

func deployment(ns, name, image string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}},
		},
	}
}

type named struct {
	name string
	obj  client.Object
}

// until polls every 2 ms until all objects exist and returns the time it took from start.
func until(b *testing.B, env *testenv.Env, start time.Time, ns string, objs ...named) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, o := range objs {
		for env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: o.name}, o.obj) != nil {
			if ctx.Err() != nil {
				b.Fatalf("%T %s/%s not created within a minute", o.obj, ns, o.name)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return time.Since(start)
}

func report(b *testing.B, prefix string, ds []time.Duration) {
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, prefix+"-p50-ms")
	b.ReportMetric(float64(ds[len(ds)*95/100].Microseconds())/1000, prefix+"-p95-ms")
}

// BenchmarkApplyToChildren: Service created → Configuration, Revision, Route and Deployment
// all exist, over 20 Services; baseline: Deployment created → its ReplicaSet exists.
func BenchmarkApplyToChildren(b *testing.B) {
	env := testenv.Get(b)
	img := env.Image(b, "hello")
	for i := range b.N {
		ns := newNamespace(b, env, fmt.Sprintf("bench-apply-%d", i))
		var svc, base []time.Duration
		for j := range services {
			name := fmt.Sprintf("s%d", j)
			start := time.Now()
			if err := env.Ctrl.Create(context.Background(), service(ns, name, img)); err != nil {
				b.Fatal(err)
			}
			svc = append(svc, until(b, env, start, ns,
				named{name, &servingv1.Configuration{}}, named{name + "-00001", &servingv1.Revision{}},
				named{name, &servingv1.Route{}}, named{name + "-00001-deployment", &appsv1.Deployment{}}))

			dname := fmt.Sprintf("d%d", j)
			start = time.Now()
			if err := env.Ctrl.Create(context.Background(), deployment(ns, dname, img)); err != nil {
				b.Fatal(err)
			}
			base = append(base, untilReplicaSet(b, env, start, ns, dname))
		}
		report(b, "service", svc)
		report(b, "baseline-deployment", base)
	}
}

func untilReplicaSet(b *testing.B, env *testenv.Env, start time.Time, ns, name string) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		rss := &appsv1.ReplicaSetList{}
		if err := env.Ctrl.List(ctx, rss, client.InNamespace(ns), client.MatchingLabels{"app": name}); err == nil && len(rss.Items) > 0 {
			return time.Since(start)
		}
		if ctx.Err() != nil {
			b.Fatalf("no ReplicaSet for %s/%s within a minute", ns, name)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// BenchmarkIdleCPU: CPU of the whole gantry process over 30 s of idling, first holding no
// Services, then holding 1000.
func BenchmarkIdleCPU(b *testing.B) {
	env := testenv.Get(b)
	img := env.Image(b, "hello")
	const idle = 30 * time.Second
	for i := range b.N {
		b.ReportMetric(cpuPercent(idle), "cpu-%-0-services")
		ns := newNamespace(b, env, fmt.Sprintf("bench-idle-%d", i))
		for j := range 1000 {
			if err := env.Ctrl.Create(context.Background(), service(ns, fmt.Sprintf("s%d", j), img)); err != nil {
				b.Fatal(err)
			}
		}
		// Settled: every Service has its Deployment, then a minute for the dust to fall.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		for {
			ds := &appsv1.DeploymentList{}
			if err := env.Ctrl.List(ctx, ds, client.InNamespace(ns)); err == nil && len(ds.Items) == 1000 {
				break
			}
			if ctx.Err() != nil {
				b.Fatal("1000 deployments not created within 15 minutes")
			}
			time.Sleep(time.Second)
		}
		cancel()
		time.Sleep(time.Minute)
		b.ReportMetric(cpuPercent(idle), "cpu-%-1000-services")
	}
}

// cpuPercent is the process's CPU use over d, in percent of one core.
func cpuPercent(d time.Duration) float64 {
	before := proccpu.Used()
	time.Sleep(d)
	return 100 * float64(proccpu.Used()-before) / float64(d)
}
