package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/testenv"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// fetchResult is what the fetch test image answers.
type fetchResult struct {
	Status int      `json:"status"`
	Body   string   `json:"body"`
	Addrs  []string `json:"addrs"`
	Error  string   `json:"error"`
}

// inPod asks the fetch pod at api to do something from inside its pod.
func inPod(ctx context.Context, api, path string, q url.Values) (fetchResult, error) {
	var r fetchResult
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+path+"?"+q.Encode(), nil)
	if err != nil {
		return r, err
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%s: %w", b, err)
	}
	return r, nil
}

// plainService is a Deployment of hello and a ClusterIP Service in front of it on port 80.
func plainService(t *testing.T, env *testenv.Env, ns, name string) {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](2),
					Containers: []corev1.Container{{
						Name: "hello", Image: env.Image(t, "hello"),
						Env:            []corev1.EnvVar{{Name: "TARGET", Value: "plain"}},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intOrStr(8080)}}, PeriodSeconds: 1},
					}},
				},
			},
		},
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	ctx := context.Background()
	if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestPodsReachServicesByName calls, from inside a pod, a Knative Service at its cluster URL,
// a cluster-local Knative Service the host cannot reach, and a Deployment behind a ClusterIP
// Service, by their DNS names.
func TestPodsReachServicesByName(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	srv := env.Server
	ns := newNamespace(t, env.Client)
	ctx := context.Background()

	private := helloService(env, t, ns, "private")
	private.Labels[servingv1.VisibilityLabelKey] = servingv1.VisibilityClusterLocal
	for _, svc := range []*servingv1.Service{helloService(env, t, ns, "hello"), private} {
		if err := env.Ctrl.Create(ctx, svc); err != nil {
			t.Fatal(err)
		}
	}
	plainService(t, env, ns, "web")
	waitFor(t, "the namespace's default ServiceAccount", 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := env.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, err
	})
	createPod(t, env, ns, podWith("fetch", corev1.Container{
		Name: "fetch", Image: env.Image(t, "fetch"),
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/file", Port: intOrStr(8080)}}, PeriodSeconds: 1},
	}))
	pod := waitPod(t, env, ns, "fetch", "running", 90*time.Second, running)
	api := "http://" + pod.Status.PodIP + ":8080"
	hello := waitServiceReady(t, env, ns, "hello")
	waitServiceReady(t, env, ns, "private")

	// The pod asks the cluster DNS through the resolv.conf the node writes for it.
	gw := srv.PodNetwork.Gateway().String()
	resolvConf, err := inPod(ctx, api, "/file", url.Values{"path": {"/etc/resolv.conf"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resolvConf.Body, "nameserver "+gw+"\n") || !strings.Contains(resolvConf.Body, "search "+ns+".svc.cluster.local") {
		t.Errorf("the pod's resolv.conf does not name the cluster DNS and search path:\n%s", resolvConf.Body)
	}
	// get fetches u from the pod until it answers 200 with want in the body.
	get := func(t *testing.T, u, want string) {
		t.Helper()
		waitFor(t, "GET "+u+" from the pod", 60*time.Second, func(ctx context.Context) (bool, error) {
			r, err := inPod(ctx, api, "/fetch", url.Values{"url": {u}})
			if err != nil {
				return false, err
			}
			if r.Status != http.StatusOK || !strings.Contains(r.Body, want) {
				return false, fmt.Errorf("%d %q %s", r.Status, r.Body, r.Error)
			}
			return true, nil
		})
	}

	t.Run("a Knative Service answers at status.address.url", func(t *testing.T) {
		if hello.Status.Address == nil || hello.Status.Address.URL.String() != "http://hello."+ns+".svc.cluster.local" {
			t.Fatalf("status.address = %+v", hello.Status.Address)
		}
		r, err := inPod(ctx, api, "/resolve", url.Values{"name": {"hello." + ns + ".svc.cluster.local"}})
		if err != nil || !slices.Equal(r.Addrs, []string{gw}) {
			t.Errorf("hello resolves to %v (%v %s), want the gateway %s", r.Addrs, err, r.Error, gw)
		}
		get(t, hello.Status.Address.URL.String(), "Hello v1!")
	})

	t.Run("a cluster-local Knative Service answers pods, not the host", func(t *testing.T) {
		for _, host := range []string{"private." + ns + ".svc.cluster.local", "private." + ns + ".localhost"} {
			if code, body := call(t, env, host, nil); code != http.StatusNotFound {
				t.Errorf("from the host, Host %s: %d %q, want 404", host, code, body)
			}
		}
		get(t, "http://private."+ns+".svc.cluster.local/", "Hello v1!")
	})

	t.Run("a Deployment answers at its ClusterIP Service's name", func(t *testing.T) {
		if srv.KubeProxy == nil || !srv.KubeProxy.Running() {
			t.Skip("kube-proxy does not run in this server (another gantry server on this host runs it)")
		}
		web, err := env.Client.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r, err := inPod(ctx, api, "/resolve", url.Values{"name": {"web." + ns + ".svc.cluster.local"}})
		if err != nil || !slices.Equal(r.Addrs, []string{web.Spec.ClusterIP}) {
			t.Errorf("web resolves to %v (%v %s), want its ClusterIP %s", r.Addrs, err, r.Error, web.Spec.ClusterIP)
		}
		get(t, "http://web."+ns+".svc.cluster.local/", "Hello plain!")
	})

	t.Run("unknown names in the cluster do not exist", func(t *testing.T) {
		r, err := inPod(ctx, api, "/resolve", url.Values{"name": {"nope." + ns + ".svc.cluster.local"}})
		if err != nil || r.Error == "" || !strings.Contains(r.Error, "no such host") {
			t.Errorf("nope: %+v %v, want no such host", r, err)
		}
	})

	t.Run("short names through the pod's search path", func(t *testing.T) {
		// A Knative Service answers to <name>.<ns> and longer, as Knative's ingresses match
		// Hosts; the bare name resolves but no Route serves it as a Host.
		get(t, "http://hello."+ns+"/", "Hello v1!")
		get(t, "http://private."+ns+".svc/", "Hello v1!")
		if srv.KubeProxy != nil && srv.KubeProxy.Running() {
			get(t, "http://web/", "Hello plain!")
		}
	})
}

// TestClusterDNSAnswersFromTheHost asks the cluster DNS from the host: Services answer, an
// unknown name does not exist, and a burst of queries is answered in full.
func TestClusterDNSAnswersFromTheHost(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := env.Server.DNS.Addr()
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	k, err := env.Client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := res.LookupHost(ctx, "kubernetes.default.svc.cluster.local.")
	if err != nil || !slices.Equal(addrs, []string{k.Spec.ClusterIP}) {
		t.Errorf("kubernetes.default resolves to %v (%v), want %s", addrs, err, k.Spec.ClusterIP)
	}
	var dnsErr *net.DNSError
	if _, err := res.LookupHost(ctx, "nope.default.svc.cluster.local."); !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("nope.default: err = %v, want no such host", err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 200 {
		wg.Go(func() {
			if _, err := res.LookupHost(ctx, "kubernetes.default.svc.cluster.local."); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("in a burst of 200: %v", err)
	}
}
