// Package gateway benchmarks the request path of a real in-process Gantry (internal/testenv,
// with the serverless node): the same requests sent straight to a pod and through the gateway
// and activator, side by side in one run, and cold starts of a revision at zero. It needs
// root, runc and the CNI plugins. The load generator runs on the same machine.
//
//	go test ./bench/gateway -run '^$' -bench . -benchtime 1x -timeout 30m
package gateway

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/bench/internal/load"
	"github.com/gantry-run/gantry/internal/poll"
	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/testenv"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// service deploys image as a Knative Service with scale pods and returns its host and the
// address of one of its pods' user port.
func service(b *testing.B, env *testenv.Env, ns, name, image string, scale int) (host, podAddr string) {
	b.Helper()
	ctx := context.Background()
	if err := env.Ctrl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !isExists(err) {
		b.Fatal(err)
	}
	svc := &servingv1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: servingv1.ServiceSpec{ConfigurationSpec: servingv1.ConfigurationSpec{Template: servingv1.RevisionTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{
				autoscaling.InitialScaleAnnotationKey: fmt.Sprint(scale),
				autoscaling.MinScaleAnnotationKey:     fmt.Sprint(scale),
			}},
			Spec: servingv1.RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: image}}}},
		}}},
	}
	if err := env.Ctrl.Create(ctx, svc); err != nil {
		b.Fatal(err)
	}
	poll.Until(b, "service "+name+" Ready", 3*time.Minute, func(ctx context.Context) (bool, error) {
		err := env.Ctrl.Get(ctx, client.ObjectKeyFromObject(svc), svc)
		return err == nil && svc.IsReady(), err
	})
	var ip string
	poll.Until(b, fmt.Sprintf("%d ready pods of %s", scale, name), time.Minute, func(ctx context.Context) (bool, error) {
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: servingv1.ServiceLabelKey + "=" + name})
		if err != nil {
			return false, err
		}
		ready := 0
		for _, p := range pods.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					ready++
					ip = p.Status.PodIP
				}
			}
		}
		return ready == scale, nil
	})
	return svc.Status.URL.Host, net.JoinHostPort(ip, "8080")
}

func isExists(err error) bool { return err != nil && (client.IgnoreAlreadyExists(err) == nil) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// BenchmarkAddedLatency: hello at a fixed 500 req/s for 10 s, straight to the pod's user port
// and through the gateway. Target: p99 added ≤ 2 ms.
func BenchmarkAddedLatency(b *testing.B) {
	env := testenv.Get(b)
	testenv.RequireNode(b)
	host, pod := service(b, env, "bench-latency", "hello", env.Image(b, "hello"), 1)
	direct, gw := load.NewClient(pod), load.NewClient(env.GatewayAddr)
	// Warm both paths' connections.
	load.OpenLoop(direct, "http://"+pod+"/", host, 200, time.Second)
	load.OpenLoop(gw, "http://"+env.GatewayAddr+"/", host, 200, time.Second)
	d := load.OpenLoop(direct, "http://"+pod+"/", host, 500, 10*time.Second)
	g := load.OpenLoop(gw, "http://"+env.GatewayAddr+"/", host, 500, 10*time.Second)
	fmt.Printf("\n| hello at 500 req/s, 10 s | p50 | p99 | errors |\n|---|---|---|---|\n")
	fmt.Printf("| straight to the pod (user port) | %s | %s | %d |\n", ms(d.Percentile(.5)), ms(d.Percentile(.99)), d.Errors)
	fmt.Printf("| through gateway + activator + queue-proxy | %s | %s | %d |\n", ms(g.Percentile(.5)), ms(g.Percentile(.99)), g.Errors)
	fmt.Printf("| added | %s | %s | |\n", ms(g.Percentile(.5)-d.Percentile(.5)), ms(g.Percentile(.99)-d.Percentile(.99)))
}

// BenchmarkSlowHandler: 1000 req/s for 10 s of a handler that sleeps 100 ms, on two pods, as
// Knative's dataplane-probe. Target: p95 ≤ 103 ms (Knative's budget 110 ms).
func BenchmarkSlowHandler(b *testing.B) {
	env := testenv.Get(b)
	testenv.RequireNode(b)
	host, pod := service(b, env, "bench-slow", "slow", env.Image(b, "autoscale"), 2)
	direct, gw := load.NewClient(pod), load.NewClient(env.GatewayAddr)
	load.OpenLoop(gw, "http://"+env.GatewayAddr+"/?sleep=100", host, 200, 2*time.Second)
	d := load.OpenLoop(direct, "http://"+pod+"/?sleep=100", host, 1000, 10*time.Second)
	g := load.OpenLoop(gw, "http://"+env.GatewayAddr+"/?sleep=100", host, 1000, 10*time.Second)
	fmt.Printf("\n| sleep=100 ms at 1000 req/s, 10 s | p50 | p95 | p99 | errors |\n|---|---|---|---|---|\n")
	fmt.Printf("| straight to one pod (user port) | %s | %s | %s | %d |\n", ms(d.Percentile(.5)), ms(d.Percentile(.95)), ms(d.Percentile(.99)), d.Errors)
	fmt.Printf("| through the gateway, two pods | %s | %s | %s | %d |\n", ms(g.Percentile(.5)), ms(g.Percentile(.95)), ms(g.Percentile(.99)), g.Errors)
}

// BenchmarkThroughput: 50 connections as fast as answered for 10 s, straight to the pod and
// through the gateway. Target: gateway ≥ 0.5 of direct.
func BenchmarkThroughput(b *testing.B) {
	env := testenv.Get(b)
	testenv.RequireNode(b)
	host, pod := service(b, env, "bench-throughput", "hello", env.Image(b, "hello"), 1)
	podIP, _, _ := net.SplitHostPort(pod)
	queue := net.JoinHostPort(podIP, strconv.Itoa(contract.HTTPPort))
	direct, qp, gw := load.NewClient(pod), load.NewClient(queue), load.NewClient(env.GatewayAddr)
	load.ClosedLoop(gw, "http://"+env.GatewayAddr+"/", host, 50, 2*time.Second)
	d := load.ClosedLoop(direct, "http://"+pod+"/", host, 50, 10*time.Second)
	q := load.ClosedLoop(qp, "http://"+queue+"/", host, 50, 10*time.Second)
	g := load.ClosedLoop(gw, "http://"+env.GatewayAddr+"/", host, 50, 10*time.Second)
	fmt.Printf("\n| hello, 50 connections, 10 s | req/s | errors |\n|---|---|---|\n")
	fmt.Printf("| straight to the pod (user port) | %.0f | %d |\n", d.Rate(), d.Errors)
	fmt.Printf("| to the pod's queue-proxy | %.0f | %d |\n", q.Rate(), q.Errors)
	fmt.Printf("| through the gateway | %.0f | %d |\n", g.Rate(), g.Errors)
	fmt.Printf("| ratio | %.2f | |\n", g.Rate()/d.Rate())
}

// BenchmarkColdStart: 20 Services created at zero (initial-scale 0, so no pod has run yet);
// for each, time its first request from send to the full response. Target: p50 ≤ 400 ms. A
// second table gives the median time to each phase of the cold start, as watches see them
// (timeline_test.go).
func BenchmarkColdStart(b *testing.B) {
	env := testenv.Get(b)
	testenv.RequireNode(b)
	const ns, tries = "bench-cold", 20
	ctx := context.Background()
	cms := env.Client.CoreV1().ConfigMaps(config.Namespace)
	cm, err := cms.Get(ctx, config.AutoscalerConfigName, metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data["allow-zero-initial-scale"] = "true"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		b.Fatal(err)
	}
	time.Sleep(time.Second) // the configuration store follows the ConfigMap by watch
	hosts := make([]string, tries)
	for i := range tries {
		hosts[i], _ = service(b, env, ns, fmt.Sprintf("cold-%d", i), env.Image(b, "hello"), 0)
	}
	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	tl, err := watchTimeline(watchCtx, env.Client, ns)
	if err != nil {
		b.Fatal(err)
	}
	c := load.NewClient(env.GatewayAddr)
	var took []time.Duration
	bySvc := map[string]time.Duration{}
	for i, host := range hosts {
		svc := fmt.Sprintf("cold-%d", i)
		start := time.Now()
		tl.sent(svc, start)
		if err := load.Do(c, "http://"+env.GatewayAddr+"/", host); err != nil {
			b.Fatalf("cold request: %v", err)
		}
		took = append(took, time.Since(start))
		bySvc[svc] = took[i]
	}
	time.Sleep(time.Second) // the last phases may follow the response
	inOrder := make([]string, len(took))
	for i, d := range took {
		inOrder[i] = fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond))
	}
	slices.Sort(took)
	fmt.Printf("\n| cold start, %d tries, image cached | p50 | p95 | min | max |\n|---|---|---|---|---|\n", tries)
	fmt.Printf("| request to a revision at zero → full response | %s | %s | %s | %s |\n",
		ms(took[tries/2]), ms(took[tries*95/100]), ms(took[0]), ms(took[tries-1]))
	fmt.Printf("\nIn the order sent, ms: %s\n", strings.Join(inOrder, " "))
	fmt.Print(tl.table(bySvc))
}
