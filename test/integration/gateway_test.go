package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/podnet"
	"github.com/gantry-run/gantry/internal/testenv"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// gatewayClient sends requests to the gateway with a Route's host.
var gatewayClient = &http.Client{Timeout: 30 * time.Second}

func call(t *testing.T, env *testenv.Env, host string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+env.GatewayAddr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := gatewayClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", host, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// imageService is helloService running the test image called image instead.
func imageService(env *testenv.Env, t *testing.T, ns, name, image string) *servingv1.Service {
	t.Helper()
	svc := helloService(env, t, ns, name)
	svc.Spec.Template.Spec.Containers[0].Image = env.Image(t, image)
	return svc
}

// readyService creates svc and waits until it is Ready.
func readyService(t *testing.T, env *testenv.Env, svc *servingv1.Service) *servingv1.Service {
	t.Helper()
	if err := env.Ctrl.Create(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	return waitServiceReady(t, env, svc.Namespace, svc.Name)
}

func waitServiceReady(t *testing.T, env *testenv.Env, ns, name string) *servingv1.Service {
	t.Helper()
	got := &servingv1.Service{}
	waitFor(t, "service "+name+" Ready", 90*time.Second, func(ctx context.Context) (bool, error) {
		if err := env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, got); err != nil {
			return false, err
		}
		return got.IsReady(), fmt.Errorf("conditions %+v", got.Status.Conditions)
	})
	return got
}

func TestServiceAnswersAtItsURL(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	svc := readyService(t, env, helloService(env, t, ns, "hello"))
	host := svc.Status.URL.Host
	if host != "hello."+ns+".localhost" {
		t.Errorf("status.url host = %q", host)
	}
	if code, body := call(t, env, host, nil); code != http.StatusOK || !strings.Contains(body, "Hello") {
		t.Errorf("GET %s = %d %q, want 200 from hello", host, code, body)
	}
	// The Route's Ingress is ready, written by the gateway.
	route := get(t, env, ns, "hello", &servingv1.Route{})
	if c := route.Status.GetCondition(servingv1.RouteConditionIngressReady); !c.IsTrue() {
		t.Errorf("IngressReady = %+v", c)
	}
	if code, body := call(t, env, "nobody."+ns+".localhost", nil); code != http.StatusNotFound || !strings.Contains(body, "nobody."+ns+".localhost") {
		t.Errorf("unknown host = %d %q, want 404 naming the host", code, body)
	}
	// The cluster names answer only from pods, never from the host.
	if code, _ := call(t, env, "hello."+ns+".svc.cluster.local", nil); code != http.StatusNotFound {
		t.Errorf("cluster-local host from the host = %d, want 404", code)
	}
}

func TestSplitsAndTags(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	readyService(t, env, helloService(env, t, ns, "web"))
	update(t, env, ns, "web", func(s *servingv1.Service) { s.Spec.Template.Spec.Containers[0].Env[0].Value = "v2" })
	waitFor(t, "web-00002 ready", 90*time.Second, func(ctx context.Context) (bool, error) {
		rev := &servingv1.Revision{}
		ok, err := exists(ctx, env, ns, "web-00002", rev)
		return ok && rev.IsReady(), err
	})
	update(t, env, ns, "web", func(s *servingv1.Service) {
		s.Spec.Traffic = []servingv1.TrafficTarget{
			{RevisionName: "web-00001", Percent: ptr.To[int64](50), Tag: "one"},
			{RevisionName: "web-00002", Percent: ptr.To[int64](50), Tag: "two"},
		}
	})
	waitFor(t, "the split to be served", 60*time.Second, func(ctx context.Context) (bool, error) {
		svc := &servingv1.Service{}
		err := env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, svc)
		return err == nil && svc.IsReady() && svc.Generation == svc.Status.ObservedGeneration && len(svc.Status.Traffic) == 2, err
	})
	counts := map[string]int{}
	for range 200 {
		code, body := call(t, env, "web."+ns+".localhost", nil)
		if code != http.StatusOK {
			t.Fatalf("split request = %d %q", code, body)
		}
		counts[strings.TrimSpace(body)]++
	}
	if len(counts) != 2 {
		t.Fatalf("200 requests reached %v, want both revisions", counts)
	}
	for body, n := range counts {
		if n < 50 {
			t.Errorf("%q got %d of 200, want at least 25%%", body, n)
		}
	}
	// A tag's host reaches only its revision.
	_, one := call(t, env, "one-web."+ns+".localhost", nil)
	for range 20 {
		if _, body := call(t, env, "one-web."+ns+".localhost", nil); body != one {
			t.Fatalf("tag one answered %q and %q", one, body)
		}
		if _, body := call(t, env, "two-web."+ns+".localhost", nil); body == one {
			t.Fatalf("tag two answered like tag one: %q", body)
		}
	}
}

func TestRevisionAtZeroWakesForItsRequests(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	shortWindows(t, env)
	ns := newNamespace(t, env.Client)
	// Created at zero: the revision has no pod until its first request.
	svc := readyService(t, env, autoscaledService(env, t, ns, "sleepy", "hello", map[string]string{
		autoscaling.InitialScaleAnnotationKey: "0",
	}))
	if n, err := podCount(context.Background(), env, ns, "sleepy-00001"); err != nil || n != 0 {
		t.Fatalf("a revision created at zero has %d pods (%v)", n, err)
	}
	// A revision at zero is Ready, and its route serves it.
	if rev := get(t, env, ns, "sleepy-00001", &servingv1.Revision{}); !rev.IsReady() {
		t.Errorf("revision at zero is not Ready: %+v", rev.Status.Conditions)
	}
	// 100 concurrent first requests all succeed.
	var wg sync.WaitGroup
	codes := make(chan int, 100)
	for range 100 {
		wg.Go(func() {
			code, _ := call(t, env, svc.Status.URL.Host, nil)
			codes <- code
		})
	}
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != http.StatusOK {
			t.Errorf("a first request got %d", code)
		}
	}
}

func TestConcurrencyOneNeverOverlaps(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	svc := imageService(env, t, ns, "single", "singlethreaded")
	svc.Spec.Template.Spec.ContainerConcurrency = ptr.To[int64](1)
	svc = readyService(t, env, svc)
	var wg sync.WaitGroup
	var mu sync.Mutex
	bad := map[int]int{}
	for range 5 {
		wg.Go(func() {
			for range 10 {
				code, _ := call(t, env, svc.Status.URL.Host, nil)
				if code != http.StatusOK {
					mu.Lock()
					bad[code]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("5 clients on containerConcurrency 1: non-200 answers %v", bad)
	}
}

func TestRuntimeSeesForwardedHeadersAndItsEnvironment(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	svc := imageService(env, t, ns, "rt", "runtime")
	svc = readyService(t, env, svc)
	type report struct {
		Env     map[string]string   `json:"env"`
		Headers map[string][]string `json:"headers"`
		Host    string              `json:"host"`
	}
	get := func(client *http.Client, closing bool) report {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+env.GatewayAddr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Close = closing
		req.Host = svc.Status.URL.Host
		req.Header.Set("X-Custom", "kept")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET = %d %q", resp.StatusCode, body)
		}
		var r report
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("decoding %q: %v", body, err)
		}
		return r
	}
	// A request that closes its connection goes through the gateway and the queue-proxy; on a
	// kept connection the gateway routes the first request and passes the connection, with
	// it, to the pod's queue-proxy (internal/connpass), which serves it and the next ones
	// alone. The app sees the same either way.
	var passedBefore int64
	if env.Server.Passer != nil {
		passedBefore, _ = env.Server.Passer.Counts()
	}
	first := get(gatewayClient, true)
	if env.Server.Passer != nil {
		if passed, _ := env.Server.Passer.Counts(); passed != passedBefore {
			t.Errorf("a request closing its connection had its connection passed")
		}
	}
	kept := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer kept.CloseIdleConnections()
	if first.Host != svc.Status.URL.Host {
		t.Errorf("Host = %q, want %q", first.Host, svc.Status.URL.Host)
	}
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Proto"} {
		if len(first.Headers[h]) == 0 {
			t.Errorf("header %s missing; headers %v", h, first.Headers)
		}
	}
	// The gateway gives the client's address; the queue-proxy appends its peer's, the pods'
	// gateway address on the bridge, whether the gateway came through its socket or over TCP.
	gw, err := podnet.GatewayIP(env.PodCIDR)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(first.Headers["X-Forwarded-For"], ", "), "127.0.0.1, "+gw.String(); got != want {
		t.Errorf("X-Forwarded-For = %q, want %q", got, want)
	}
	if got := first.Headers["X-Custom"]; len(got) != 1 || got[0] != "kept" {
		t.Errorf("client header X-Custom = %v, want kept", got)
	}
	for k, want := range map[string]string{"PORT": "8080", "K_SERVICE": "rt", "K_CONFIGURATION": "rt", "K_REVISION": "rt-00001"} {
		if first.Env[k] != want {
			t.Errorf("env %s = %q, want %q", k, first.Env[k], want)
		}
	}
	for i := range 3 {
		next := get(kept, false)
		if next.Host != first.Host {
			t.Errorf("request %d on the kept connection: Host = %q, want %q", i+1, next.Host, first.Host)
		}
		for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Proto", "X-Custom", "K-Original-Host"} {
			if got, want := strings.Join(next.Headers[h], "; "), strings.Join(first.Headers[h], "; "); got != want {
				t.Errorf("request %d on the kept connection: %s = %q, want %q as through the gateway", i+1, h, got, want)
			}
		}
	}
	if env.Server.Passer != nil {
		if passed, _ := env.Server.Passer.Counts(); passed == passedBefore {
			t.Error("the gateway passed no connection to the pod's queue-proxy")
		}
	}
}

// TestRevisionTimeouts follows Knative's conformance test with timeoutSeconds 10: a response
// that starts after 2 s is 200; one that would start after 12 s is 504; one that starts at
// once and streams for 15 s is 200 (the stream is cut at the timeout; the status stands).
func TestRevisionTimeouts(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	svc := imageService(env, t, ns, "slow", "timeout")
	svc.Spec.Template.Spec.TimeoutSeconds = ptr.To[int64](10)
	svc = readyService(t, env, svc)
	host := svc.Status.URL.Host
	cases := []struct {
		query string
		want  int
	}{
		{"initialTimeout=2000", http.StatusOK},
		{"initialTimeout=12000", http.StatusGatewayTimeout},
		{"timeout=15000&interval=500", http.StatusOK},
	}
	got := make([]int, len(cases))
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodGet, "http://"+env.GatewayAddr+"/?"+c.query, nil)
			if err != nil {
				t.Error(err)
				return
			}
			req.Host = host
			resp, err := gatewayClient.Do(req)
			if err != nil {
				t.Errorf("%s: %v", c.query, err)
				return
			}
			got[i] = resp.StatusCode
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()
	for i, c := range cases {
		if got[i] != c.want {
			t.Errorf("%s: status %d, want %d", c.query, got[i], c.want)
		}
	}
}

// TestOverloadIsRefusedAndRecovers: ten times what one pod can take (containerConcurrency 1,
// 100 ms per request: 10 req/s) for 6 s. The activator's bounded queue (testenv sets it to
// 200) answers 503 beyond it; the server's memory stays bounded; once the load stops, the
// revision answers again.
func TestOverloadIsRefusedAndRecovers(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	svc := imageService(env, t, ns, "busy", "autoscale")
	svc.Spec.Template.Spec.ContainerConcurrency = ptr.To[int64](1)
	svc = readyService(t, env, svc)
	host := svc.Status.URL.Host

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	client := &http.Client{Timeout: 8 * time.Second}
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 600 { // 100 req/s for 6 s
		time.Sleep(time.Until(start.Add(time.Duration(i) * 10 * time.Millisecond)))
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, "http://"+env.GatewayAddr+"/?sleep=100", nil)
			req.Host = host
			code := 0 // a client timeout
			if resp, err := client.Do(req); err == nil {
				code = resp.StatusCode
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		})
	}
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	wg.Wait()
	t.Logf("answers under 10× overload: %v; heap in use %d MB before, %d MB at the peak", codes,
		before.HeapInuse>>20, during.HeapInuse>>20)
	if codes[http.StatusServiceUnavailable] == 0 {
		t.Errorf("no 503 from the bounded queue: %v", codes)
	}
	if codes[http.StatusOK] < 40 {
		t.Errorf("the pod served only %d requests in 6 s: %v", codes[http.StatusOK], codes)
	}
	for code, n := range codes {
		if code >= 500 && code != http.StatusServiceUnavailable && code != http.StatusGatewayTimeout {
			t.Errorf("%d answers of %d", n, code)
		}
	}
	if grown := int64(during.HeapInuse) - int64(before.HeapInuse); grown > 200<<20 {
		t.Errorf("heap grew %d MB under overload", grown>>20)
	}
	waitFor(t, "the revision to answer after the overload", 30*time.Second, func(ctx context.Context) (bool, error) {
		code, body := call(t, env, host, nil)
		return code == http.StatusOK, fmt.Errorf("%d %q", code, body)
	})
}

// TestDeletingAPodUnderLoadLosesNothing: two pods take a steady load; one is deleted midway.
// Its queue-proxy drains what it accepted and the activator stops sending it new requests:
// every request succeeds.
func TestDeletingAPodUnderLoadLosesNothing(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	svc := imageService(env, t, ns, "steady", "autoscale")
	svc.Spec.Template.Annotations = map[string]string{
		"autoscaling.knative.dev/min-scale": "2", "autoscaling.knative.dev/initial-scale": "2",
	}
	svc = readyService(t, env, svc)
	host := svc.Status.URL.Host
	var pods *corev1.PodList
	waitFor(t, "two ready pods", 60*time.Second, func(ctx context.Context) (bool, error) {
		var err error
		pods, err = env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: servingv1.RevisionLabelKey + "=steady-00001"})
		return err == nil && len(pods.Items) == 2 && running(&pods.Items[0]) && running(&pods.Items[1]), err
	})

	var passedBefore int64
	if env.Server.Passer != nil {
		passedBefore, _ = env.Server.Passer.Counts()
	}
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 300 { // 50 req/s for 6 s, each 50 ms
		if i == 100 {
			go func() {
				_ = env.Client.CoreV1().Pods(ns).Delete(context.Background(), pods.Items[0].Name, metav1.DeleteOptions{})
			}()
		}
		time.Sleep(time.Until(start.Add(time.Duration(i) * 20 * time.Millisecond)))
		wg.Go(func() {
			code, _ := call(t, env, host, nil)
			mu.Lock()
			codes[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[http.StatusOK] != 300 {
		t.Errorf("answers while a pod was deleted: %v, want 300 × 200", codes)
	}
	// The kept connections were passed to the pods' queue-proxies (internal/connpass): the
	// deleted pod's gave its own back as it drained.
	if env.Server.Passer != nil {
		if passed, _ := env.Server.Passer.Counts(); passed == passedBefore {
			t.Error("no connection was passed to a queue-proxy during the load")
		}
	}
}

// TestRolloutUnderLoadOnlyAnswers200: all traffic moves from one revision to the next while a
// prober sends continuously; every answer is 200.
func TestRolloutUnderLoadOnlyAnswers200(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	svc := readyService(t, env, helloService(env, t, ns, "roll"))
	host := svc.Status.URL.Host
	stop := make(chan struct{})
	var mu sync.Mutex
	codes := map[int]int{}
	bodies := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, body := call(t, env, host, nil)
				mu.Lock()
				codes[code]++
				bodies[strings.TrimSpace(body)]++
				mu.Unlock()
			}
		})
	}
	// A new revision; the Service's latestRevision target moves all traffic to it once ready.
	update(t, env, ns, "roll", func(s *servingv1.Service) { s.Spec.Template.Spec.Containers[0].Env[0].Value = "v2" })
	waitFor(t, "all traffic on roll-00002", 90*time.Second, func(ctx context.Context) (bool, error) {
		s := &servingv1.Service{}
		if err := env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "roll"}, s); err != nil {
			return false, err
		}
		return s.IsReady() && len(s.Status.Traffic) == 1 && s.Status.Traffic[0].RevisionName == "roll-00002", nil
	})
	waitFor(t, "the new revision's answers", 30*time.Second, func(context.Context) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return bodies["Hello v2!"] > 50, nil
	})
	close(stop)
	wg.Wait()
	t.Logf("answers during the rollout: %v %v", codes, bodies)
	for code, n := range codes {
		if code != http.StatusOK {
			t.Errorf("%d answers of %d during the rollout", n, code)
		}
	}
}
