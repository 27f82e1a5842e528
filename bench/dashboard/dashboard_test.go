// Package dashboard measures what the dashboard's live view costs the server (issue 14,
// Performance: ≤ 2% of one core with 100 services at 10 req/s each).
//
//	go test ./bench/dashboard -run '^$' -bench LiveView -benchtime 150x -count 3
//
// Each iteration is one tick of the dashboard's sampler, as the server runs it every 2 s:
// between ticks, every service gets the requests of 2 s at its rate, recorded in metrics of
// the activator's and the autoscaler's shapes in a registry that also holds the Go and process
// collectors (as the server's does); the tick gathers the registry, reads the services,
// revisions and PodAutoscalers, draws every service's point and sends the frame to the open
// pages, which read it over real HTTP. The figure is the process's CPU time (all goroutines,
// the pages' and the garbage collector's included) per tick, over the tick's 2 s: the share of
// one core the live view takes. The recording of requests is the data plane's work, not the
// dashboard's, and is left out of the CPU time. The baseline in the same run is the tick with
// no page open (the history is kept whether anyone looks or not).
package dashboard

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/gantry-run/gantry/internal/dashboard"
	"github.com/gantry-run/gantry/internal/proccpu"
	"github.com/gantry-run/gantry/pkg/apis"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	sv1alpha1 "github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

const (
	interval = 2 * time.Second
	rate     = 10 // requests per second per service
)

func BenchmarkLiveView(b *testing.B) {
	for _, c := range []struct {
		services, pages int
	}{{100, 0}, {100, 1}, {100, 4}} {
		b.Run(fmt.Sprintf("services=%d/pages=%d", c.services, c.pages), func(b *testing.B) {
			liveView(b, c.services, c.pages)
		})
	}
}

func liveView(b *testing.B, services, pages int) {
	reg, record := registry(b)
	d := dashboard.New(dashboard.Options{Gatherer: reg, Client: objects(b, services), Interval: interval})
	srv := httptest.NewServer(d)
	defer srv.Close()
	// The pages leave before the server closes.
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	for range pages {
		openPage(b, ctx, srv.URL)
	}
	// A first tick and a full window of history, as a page opened after 15 minutes sees.
	now := time.Unix(1_800_000_000, 0)
	for range 450 {
		record(services, rate*int(interval/time.Second))
		now = now.Add(interval)
		if err := d.Tick(ctx, now); err != nil {
			b.Fatal(err)
		}
	}
	var cpu time.Duration
	b.ResetTimer()
	for range b.N {
		record(services, rate*int(interval/time.Second))
		now = now.Add(interval)
		before := proccpu.Used()
		if err := d.Tick(ctx, now); err != nil {
			b.Fatal(err)
		}
		// The pages read the frame in their own goroutines: give them the moment a tick
		// has before the next, inside the measured CPU time.
		time.Sleep(5 * time.Millisecond)
		cpu += proccpu.Used() - before
	}
	b.StopTimer()
	perTick := cpu / time.Duration(b.N)
	b.ReportMetric(float64(perTick.Microseconds())/1000, "cpu-ms/tick")
	b.ReportMetric(100*perTick.Seconds()/interval.Seconds(), "%core")
}

// registry holds the server's collectors and metrics of the activator's and the
// autoscaler's shapes; record adds n requests to each of the first services.
func registry(b *testing.B) (*prometheus.Registry, func(services, n int)) {
	b.Helper()
	labels := []string{"namespace_name", "service_name", "configuration_name", "revision_name", "response_code", "response_code_class"}
	count := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "revision_request_count", Help: "Requests."}, labels)
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "revision_request_latencies", Help: "Latency in ms.",
		Buckets: []float64{5, 10, 20, 40, 60, 80, 100, 150, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 900, 1000, 2000, 5000, 10000, 20000, 50000, 100000},
	}, labels)
	reg := prometheus.NewRegistry()
	reg.MustRegister(count, latency, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var gauges []*prometheus.GaugeVec
	for _, name := range []string{"desired_pods", "requested_pods", "actual_pods", "stable_request_concurrency", "panic_request_concurrency", "target_concurrency_per_pod", "excess_burst_capacity", "panic_mode"} {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "autoscaler_" + name, Help: name}, labels[:4])
		reg.MustRegister(g)
		gauges = append(gauges, g)
	}
	return reg, func(services, n int) {
		for i := range services {
			svc := "svc-" + strconv.Itoa(i)
			rev := svc + "-00001"
			c := count.WithLabelValues("bench", svc, svc, rev, "200", "2xx")
			h := latency.WithLabelValues("bench", svc, svc, rev, "200", "2xx")
			for j := range n {
				c.Inc()
				h.Observe(float64(3 + j%40))
			}
			for _, g := range gauges {
				g.WithLabelValues("bench", svc, svc, rev).Set(1)
			}
		}
	}
}

// objects are the services, each with a revision and a PodAutoscaler, as the cache has them.
func objects(b *testing.B, services int) client.Client {
	b.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, servingv1.AddToScheme, pav1alpha1.AddToScheme, sv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			b.Fatal(err)
		}
	}
	var objs []client.Object
	for i := range services {
		name := "svc-" + strconv.Itoa(i)
		svc := &servingv1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name}}
		svc.Status.URL = &apis.URL{Scheme: "http", Host: name + ".bench.localhost"}
		svc.Status.LatestReadyRevisionName = name + "-00001"
		svc.Status.Conditions = apis.Conditions{{Type: apis.ConditionReady, Status: corev1.ConditionTrue}}
		svc.Status.Traffic = []servingv1.TrafficTarget{{RevisionName: name + "-00001", Percent: ptr.To[int64](100), LatestRevision: ptr.To(true)}}
		labels := map[string]string{servingv1.ServiceLabelKey: name}
		objs = append(objs, svc,
			&servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name + "-00001", Labels: labels}},
			&pav1alpha1.PodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: "bench", Name: name + "-00001", Labels: labels},
				Status: pav1alpha1.PodAutoscalerStatus{DesiredScale: ptr.To[int32](1), ActualScale: ptr.To[int32](1)}})
	}
	return fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
}

// openPage streams the dashboard's frames and reads them, as a browser's EventSource does,
// until the benchmark ends.
func openPage(b *testing.B, ctx context.Context, base string) {
	b.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/stream", nil)
	if err != nil {
		b.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("the stream answered %s", resp.Status)
	}
	go func() {
		defer resp.Body.Close()
		r := bufio.NewReaderSize(resp.Body, 64<<10)
		for {
			if _, err := r.ReadSlice('\n'); err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				return
			}
		}
	}()
}
