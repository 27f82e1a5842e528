package activator

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/gantry-run/gantry/internal/queue/contract"
	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

const ns = "ns"

func scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(s), servingv1.AddToScheme(s)); err != nil {
		panic(err)
	}
	return s
}

func revision(name string, cc int64, port corev1.ContainerPort) *servingv1.Revision {
	return &servingv1.Revision{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: servingv1.RevisionSpec{
			ContainerConcurrency: ptr.To(cc),
			TimeoutSeconds:       ptr.To[int64](2),
			PodSpec:              corev1.PodSpec{Containers: []corev1.Container{{Image: "x", Ports: []corev1.ContainerPort{port}}}},
		},
	}
}

// slice says the revision's pod is the server at addr.
func slice(rev, addr string) *discoveryv1.EndpointSlice {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: rev + "-abc", Namespace: ns, Labels: map[string]string{servingv1.RevisionLabelKey: rev}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To(int32(p))}},
	}
}

func serve(t *testing.T, a *Activator, rev string) *httptest.Server {
	t.Helper()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.ServeRevision(w, r, ns, rev) }))
	t.Cleanup(front.Close)
	return front
}

func TestServeRevisionStreamsAndUpgrades(t *testing.T) {
	pod := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/sse":
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: first\n\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done() // stream until the client goes
		case "/ws":
			if r.Header.Get("Upgrade") != "websocket" {
				http.Error(w, "want an upgrade", http.StatusBadRequest)
				return
			}
			conn, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			fmt.Fprint(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			_ = rw.Flush()
			line, _ := rw.ReadString('\n')
			fmt.Fprint(rw, "echo "+line)
			_ = rw.Flush()
		case "/upload":
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%d bytes from %s", len(b), r.Host)
		}
	}))
	defer pod.Close()
	c := fake.NewClientBuilder().WithScheme(scheme()).WithObjects(
		revision("hello-1", 0, corev1.ContainerPort{ContainerPort: 8080}),
		slice("hello-1", pod.Listener.Addr().String()),
	).Build()
	front := serve(t, New(Options{Client: c}), "hello-1")

	// A body goes up whole and the Host stays the client's.
	req, _ := http.NewRequest(http.MethodPost, front.URL+"/upload", strings.NewReader(strings.Repeat("x", 1<<20)))
	req.Host = "hello.ns.localhost"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "1048576 bytes from hello.ns.localhost" {
		t.Errorf("upload = %q", body)
	}

	// Server-sent events reach the client while the handler still runs.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, front.URL+"/sse", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Errorf("first event = %q, %v; want it before the stream ends", line, err)
	}
	resp.Body.Close()

	// A websocket upgrade passes through and both directions flow.
	conn, err := net.Dial("tcp", front.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(conn, "GET /ws HTTP/1.1\r\nHost: hello\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	status, _ := br.ReadString('\n')
	if !strings.Contains(status, "101") {
		t.Fatalf("upgrade answered %q", status)
	}
	for {
		l, err := br.ReadString('\n')
		if err != nil || l == "\r\n" {
			break
		}
	}
	fmt.Fprint(conn, "ping\n")
	if got, _ := br.ReadString('\n'); got != "echo ping\n" {
		t.Errorf("websocket echo = %q", got)
	}
}

func TestServeRevisionSpeaksH2CToH2CPorts(t *testing.T) {
	pod := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Proto)
	}))
	pod.Config.Protocols = new(http.Protocols)
	pod.Config.Protocols.SetHTTP1(true)
	pod.Config.Protocols.SetUnencryptedHTTP2(true)
	pod.Start()
	defer pod.Close()
	c := fake.NewClientBuilder().WithScheme(scheme()).WithObjects(
		revision("grpc-1", 0, corev1.ContainerPort{Name: "h2c", ContainerPort: 8080}),
		slice("grpc-1", pod.Listener.Addr().String()),
	).Build()
	front := serve(t, New(Options{Client: c}), "grpc-1")
	resp, err := http.Get(front.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "HTTP/2.0" {
		t.Errorf("the pod saw %q, want HTTP/2.0 for a port named h2c", body)
	}
}

// heldAtZero sends a request to revision rev (containerConcurrency cc), which has no pod, and
// returns once the activator holding it has scaled the revision's Deployment to one; done
// gets the answer's body (or the error).
func heldAtZero(t *testing.T, rev string, cc int64) (a *Activator, c client.Client, done <-chan string) {
	t.Helper()
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: rev + "-deployment", Namespace: ns, Labels: map[string]string{servingv1.RevisionLabelKey: rev}},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](0)},
	}
	c = fake.NewClientBuilder().WithScheme(scheme()).WithObjects(revision(rev, cc, corev1.ContainerPort{ContainerPort: 8080}), deploy).Build()
	a = New(Options{Client: c})
	front := serve(t, a, rev)
	answer := make(chan string, 1)
	go func() {
		resp, err := http.Get(front.URL)
		if err != nil {
			answer <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer <- string(b)
	}()
	// The request asked for a pod at once.
	waitScaledToOne(t, c, deploy, "the deployment was not scaled to 1")
	return a, c, answer
}

func TestServeRevisionAtZeroScalesAndWaits(t *testing.T) {
	pod := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "awake") }))
	defer pod.Close()
	a, c, done := heldAtZero(t, "z-1", 1)
	// The pod appears: the held request goes to it.
	if err := c.Create(context.Background(), slice("z-1", pod.Listener.Addr().String())); err != nil {
		t.Fatal(err)
	}
	a.refresh(context.Background(), ns, "z-1")
	select {
	case got := <-done:
		if got != "awake" {
			t.Errorf("held request got %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the held request was not released")
	}

	// With no pod for longer than the revision's timeout (2 s), the answer is 504.
	c2 := fake.NewClientBuilder().WithScheme(scheme()).WithObjects(revision("never-1", 1, corev1.ContainerPort{ContainerPort: 8080})).Build()
	front2 := serve(t, New(Options{Client: c2, Scaler: scalerFunc(func() error { return nil })}), "never-1")
	resp, err := http.Get(front2.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("no pod within the timeout: %d, want 504", resp.StatusCode)
	}
}

type scalerFunc func() error

func (f scalerFunc) ScaleFromZero(context.Context, string, string) error { return f() }

// A request that reached the activator through a revision's public Service names its
// revision by Knative's headers: without them it is refused, with them it wakes the revision
// from zero and reaches its pod; the public Service's own slice (which points at the
// activator) is never taken for a pod.
func TestServeHTTPByRevisionHeaders(t *testing.T) {
	pod := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "awake") }))
	defer pod.Close()
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "h-1-deployment", Namespace: ns, Labels: map[string]string{servingv1.RevisionLabelKey: "h-1"}},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](0)},
	}
	// The public Service's slice, here pointing at a closed port: were it taken for a pod,
	// the request would fail with 502.
	public := slice("h-1", "127.0.0.1:1")
	public.Name = "h-1"
	public.Labels[netv1alpha1.ServiceTypeLabelKey] = netv1alpha1.ServiceTypePublic
	c := fake.NewClientBuilder().WithScheme(scheme()).WithObjects(revision("h-1", 1, corev1.ContainerPort{ContainerPort: 8080}), deploy, public).Build()
	a := New(Options{Client: c})
	front := httptest.NewServer(a)
	defer front.Close()

	get := func(headers map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, front.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(map[string]string{netv1alpha1.RevisionHeaderName: "h-1"}); code != http.StatusBadRequest || !strings.Contains(body, netv1alpha1.NamespaceHeaderName) {
		t.Errorf("without the namespace header: %d %q, want 400 naming %s", code, body, netv1alpha1.NamespaceHeaderName)
	}
	if code, _ := get(map[string]string{netv1alpha1.RevisionHeaderName: "nope-1", netv1alpha1.NamespaceHeaderName: ns}); code != http.StatusNotFound {
		t.Errorf("an unknown revision: %d, want 404", code)
	}

	type answer struct {
		code int
		body string
	}
	done := make(chan answer, 1)
	go func() {
		code, body := get(map[string]string{netv1alpha1.RevisionHeaderName: "h-1", netv1alpha1.NamespaceHeaderName: ns})
		done <- answer{code, body}
	}()
	waitScaledToOne(t, c, deploy, "the request by headers did not scale the revision from zero")
	if err := c.Create(context.Background(), slice("h-1", pod.Listener.Addr().String())); err != nil {
		t.Fatal(err)
	}
	a.refresh(context.Background(), ns, "h-1")
	select {
	case got := <-done:
		if got.code != http.StatusOK || got.body != "awake" {
			t.Errorf("held request got %d %q, want 200 awake", got.code, got.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the held request was not released")
	}
}

// waitScaledToOne waits up to 5 s for deploy's replicas to be 1, else fails with msg.
func waitScaledToOne(t *testing.T, c client.Client, deploy *appsv1.Deployment, msg string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := &appsv1.Deployment{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(deploy), got); err != nil {
			t.Fatal(err)
		}
		if ptr.Deref(got.Spec.Replicas, 0) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Only the activator marks a request as proxied (the queue-proxy leaves those out of the
// stats it gives the autoscaler): the mark a client sends never reaches the pod.
func TestClientCannotMarkItsRequestProxied(t *testing.T) {
	seen := make(chan string, 1)
	pod := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		seen <- strings.Join(r.Header.Values(contract.ProxyHeader), ",")
	}))
	defer pod.Close()
	c := fake.NewClientBuilder().WithScheme(scheme()).WithObjects(revision("m-1", 0, corev1.ContainerPort{ContainerPort: 8080}), slice("m-1", pod.Listener.Addr().String())).Build()
	a := New(Options{Client: c})
	front := serve(t, a, "m-1")
	get := func() string {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, front.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(contract.ProxyHeader, contract.ActivatorProxy)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return <-seen
	}
	// Without a PodAutoscaler the activator is in the path: it marks the request itself.
	if got := get(); got != contract.ActivatorProxy {
		t.Errorf("in the path, the pod saw %s %q, want %q", contract.ProxyHeader, got, contract.ActivatorProxy)
	}
	a.setMode(types.NamespacedName{Namespace: ns, Name: "m-1"}, true)
	if got := get(); got != "" {
		t.Errorf("out of the path, the pod saw the client's %s %q, want none", contract.ProxyHeader, got)
	}
}
