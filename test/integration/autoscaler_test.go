package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/testenv"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// shortWindows is the shortest stable window and grace period Knative allows, so that a
// revision goes to zero in about twenty seconds.
func shortWindows(t *testing.T, env *testenv.Env) {
	t.Helper()
	if err := setConfig(t, env, config.AutoscalerConfigName, map[string]string{
		"scale-to-zero-grace-period": "6s",
		"allow-zero-initial-scale":   "true",
	}); err != nil {
		t.Fatal(err)
	}
}

// autoscaledService is a Service of image with the given autoscaling annotations and a 6 s
// stable window.
func autoscaledService(env *testenv.Env, t *testing.T, ns, name, image string, annotations map[string]string) *servingv1.Service {
	t.Helper()
	svc := imageService(env, t, ns, name, image)
	a := map[string]string{autoscaling.WindowAnnotationKey: "6s"}
	for k, v := range annotations {
		a[k] = v
	}
	svc.Spec.Template.Annotations = a
	return svc
}

// readyPods counts the revision's ready pods.
func readyPods(ctx context.Context, env *testenv.Env, ns, rev string) (int, error) {
	pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: servingv1.RevisionLabelKey + "=" + rev})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range pods.Items {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil {
				n++
			}
		}
	}
	return n, nil
}

func podCount(ctx context.Context, env *testenv.Env, ns, rev string) (int, error) {
	pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: servingv1.RevisionLabelKey + "=" + rev})
	if err != nil {
		return 0, err
	}
	return len(pods.Items), nil
}

func podAutoscaler(ctx context.Context, env *testenv.Env, ns, name string) (*pav1alpha1.PodAutoscaler, error) {
	pa := &pav1alpha1.PodAutoscaler{}
	return pa, env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pa)
}

// load sends GETs of path with host from n clients until stop is closed and counts the
// answers that are not 200.
type load struct {
	ok, failed atomic.Int64
	wg         sync.WaitGroup
	stop       chan struct{}
	lastErr    atomic.Value
}

func startLoad(env *testenv.Env, host, path string, n int) *load {
	l := &load{stop: make(chan struct{})}
	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	for range n {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, "http://"+env.GatewayAddr+path, nil)
				req.Host = host
				resp, err := c.Do(req)
				if err != nil {
					l.failed.Add(1)
					l.lastErr.Store(err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					l.failed.Add(1)
					l.lastErr.Store(resp.Status)
					continue
				}
				l.ok.Add(1)
			}
		})
	}
	return l
}

func (l *load) end(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	if n := l.failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed, the last: %v", n, n+l.ok.Load(), l.lastErr.Load())
	}
	if l.ok.Load() == 0 {
		t.Error("no request succeeded")
	}
}

func TestAutoscalerScalesToZeroAndBack(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	shortWindows(t, env)
	ns := newNamespace(t, env.Client)
	svc := readyService(t, env, autoscaledService(env, t, ns, "idle", "hello", nil))
	ctx := context.Background()
	const rev = "idle-00001"

	waitFor(t, "the idle revision at zero", 90*time.Second, func(ctx context.Context) (bool, error) {
		n, err := podCount(ctx, env, ns, rev)
		if err != nil {
			return false, err
		}
		pa, err := podAutoscaler(ctx, env, ns, rev)
		if err != nil {
			return false, err
		}
		return n == 0 && ptr.Deref(pa.Status.DesiredScale, -1) == 0, fmt.Errorf("%d pods, status %+v", n, pa.Status)
	})
	pa, err := podAutoscaler(ctx, env, ns, rev)
	if err != nil {
		t.Fatal(err)
	}
	if c := pa.Status.GetCondition(pav1alpha1.PodAutoscalerConditionActive); !c.IsFalse() || c.Reason != "NoTraffic" {
		t.Errorf("PodAutoscaler at zero: Active %+v, want False NoTraffic", c)
	}
	if pa.Status.Mode != pav1alpha1.ModeProxy {
		t.Errorf("PodAutoscaler at zero: mode %q, want the activator in the path (Proxy)", pa.Status.Mode)
	}
	waitFor(t, "the revision's Active False", 30*time.Second, func(ctx context.Context) (bool, error) {
		r := get(t, env, ns, rev, &servingv1.Revision{})
		c := r.Status.GetCondition(servingv1.RevisionConditionActive)
		return c.IsFalse() && c.Reason == "NoTraffic" && r.IsReady(), fmt.Errorf("conditions %+v", r.Status.Conditions)
	})

	// The next request wakes it, and it stays at one pod while called.
	if code, body := call(t, env, svc.Status.URL.Host, nil); code != http.StatusOK {
		t.Fatalf("request to the revision at zero: %d %s", code, body)
	}
	waitFor(t, "one ready pod again", 30*time.Second, func(ctx context.Context) (bool, error) {
		pa, err := podAutoscaler(ctx, env, ns, rev)
		if err != nil {
			return false, err
		}
		return ptr.Deref(pa.Status.ActualScale, 0) == 1 && pa.Status.IsActive(), fmt.Errorf("status %+v", pa.Status)
	})
	events, err := env.Client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scaled := 0
	for _, e := range events.Items {
		if e.Regarding.Kind == "PodAutoscaler" && e.Reason == "Scaled" {
			scaled++
		}
	}
	if scaled < 2 {
		t.Errorf("%d Scaled events on the PodAutoscaler, want at least 2 (to zero and back)", scaled)
	}

	// The autoscaler's state is in the server's Prometheus metrics, under Knative's names.
	resp, err := http.Get("http://" + env.Server.Metrics.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf(`autoscaler_actual_pods{configuration_name="idle",namespace_name=%q,revision_name=%q,service_name="idle"}`, ns, rev),
		fmt.Sprintf(`autoscaler_desired_pods{configuration_name="idle",namespace_name=%q,revision_name=%q,service_name="idle"}`, ns, rev),
		fmt.Sprintf(`autoscaler_panic_mode{configuration_name="idle",namespace_name=%q,revision_name=%q,service_name="idle"} 0`, ns, rev),
		"autoscaler_stable_request_concurrency{",
		// The request that woke it, as gantry top reads it.
		fmt.Sprintf(`revision_request_count{configuration_name="idle",namespace_name=%q,response_code="200",response_code_class="2xx",revision_name=%q,service_name="idle"} 1`, ns, rev),
		"revision_request_latencies_bucket{",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Once the Service and its revision are gone, so are the revision's series.
	if err := env.Ctrl.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	series := fmt.Sprintf(`namespace_name=%q,response_code="200",response_code_class="2xx",revision_name=%q`, ns, rev)
	waitFor(t, "the deleted revision's request series gone from /metrics", 60*time.Second, func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+env.Server.Metrics.Addr()+"/metrics", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return false, err
		}
		return !strings.Contains(string(body), series), fmt.Errorf("/metrics still has %s", series)
	})
}

func TestAutoscalerFollowsAStepOfLoad(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	const rev = "step-00001"
	svc := readyService(t, env, autoscaledService(env, t, ns, "step", "autoscale", map[string]string{
		autoscaling.TargetAnnotationKey:   "10",
		autoscaling.MinScaleAnnotationKey: "1",
	}))

	// 50 concurrent requests of 100 ms against a target of 10 per pod: five pods wanted.
	l := startLoad(env, svc.Status.URL.Host, "/?sleep=100", 50)
	began := time.Now()
	waitFor(t, "five pods wanted", 10*time.Second, func(ctx context.Context) (bool, error) {
		pa, err := podAutoscaler(ctx, env, ns, rev)
		if err != nil {
			return false, err
		}
		return ptr.Deref(pa.Status.DesiredScale, 0) >= 5, fmt.Errorf("status %+v", pa.Status)
	})
	t.Logf("five pods wanted %s after the load began", time.Since(began).Round(time.Millisecond))
	waitFor(t, "five ready pods", 60*time.Second, func(ctx context.Context) (bool, error) {
		n, err := readyPods(ctx, env, ns, rev)
		if err != nil {
			return false, err
		}
		return n >= 5, fmt.Errorf("%d ready", n)
	})
	time.Sleep(3 * time.Second)
	l.end(t)

	// The scale falls no faster than max-scale-down-rate (2): no decision wants fewer than
	// half the pods ready when it was made (rounded down, as Knative does). It goes down to min-scale while a prober keeps
	// calling, and none of the prober's requests fails.
	prober := startLoad(env, svc.Status.URL.Host, "/", 1)
	waitFor(t, "back at min-scale", 90*time.Second, func(ctx context.Context) (bool, error) {
		pa, err := podAutoscaler(ctx, env, ns, rev)
		if err != nil {
			return false, err
		}
		d, ready := ptr.Deref(pa.Status.DesiredScale, 0), ptr.Deref(pa.Status.ActualScale, 0)
		if d < ready/2 {
			t.Errorf("a decision wanted %d pods with %d ready; max-scale-down-rate is 2", d, ready)
		}
		n, err := podCount(ctx, env, ns, rev)
		if err != nil {
			return false, err
		}
		return d == 1 && n == 1, fmt.Errorf("desired %d, %d pods", d, n)
	})
	prober.end(t)
}

func TestAutoscalerBounds(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	ctx := context.Background()

	// initial-scale 3 is honoured at creation; min-scale 2 keeps two pods while idle.
	if err := env.Ctrl.Create(ctx, autoscaledService(env, t, ns, "bounded", "autoscale", map[string]string{
		autoscaling.InitialScaleAnnotationKey: "3",
		autoscaling.MinScaleAnnotationKey:     "2",
		autoscaling.MaxScaleAnnotationKey:     "3",
		autoscaling.TargetAnnotationKey:       "1",
	})); err != nil {
		t.Fatal(err)
	}
	svc := waitServiceReady(t, env, ns, "bounded")
	const rev = "bounded-00001"
	waitFor(t, "three ready pods at creation", 60*time.Second, func(ctx context.Context) (bool, error) {
		n, err := readyPods(ctx, env, ns, rev)
		if err != nil {
			return false, err
		}
		return n == 3, fmt.Errorf("%d ready", n)
	})

	// 10 concurrent requests against a target of 1: max-scale caps at 3, the rest queue.
	l := startLoad(env, svc.Status.URL.Host, "/?sleep=100", 10)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		pa, err := podAutoscaler(ctx, env, ns, rev)
		if err != nil {
			t.Fatal(err)
		}
		if d := ptr.Deref(pa.Status.DesiredScale, 0); d > 3 {
			t.Fatalf("desired scale %d under load, want at most max-scale 3", d)
		}
		time.Sleep(500 * time.Millisecond)
	}
	l.end(t)

	// Idle past a stable window and the grace: min-scale keeps two.
	time.Sleep(15 * time.Second)
	if n, err := readyPods(ctx, env, ns, rev); err != nil || n != 2 {
		t.Errorf("idle with min-scale 2: %d ready pods (%v), want 2", n, err)
	}
}
