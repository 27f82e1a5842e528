package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/testenv"
	"github.com/gantry-run/gantry/pkg/apis/config"
)

// TestAnonymousRequestsReachOnlyTheHealthChecks calls the API server without credentials:
// only /livez, /readyz and /version answer; every other path is 401, not a 403 from RBAC
// after an anonymous user was let in.
func TestAnonymousRequestsReachOnlyTheHealthChecks(t *testing.T) {
	env := testenv.Get(t)
	ca, err := os.ReadFile(env.Config.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	anonymous := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	for path, want := range map[string]int{
		"/readyz":                         http.StatusOK,
		"/livez":                          http.StatusOK,
		"/version":                        http.StatusOK,
		"/api":                            http.StatusUnauthorized,
		"/healthz":                        http.StatusUnauthorized,
		"/apis":                           http.StatusUnauthorized,
		"/api/v1/namespaces/default/pods": http.StatusUnauthorized,
		// Agents read cluster-info to trust the server; the rest of kube-public stays closed.
		"/api/v1/namespaces/kube-public/configmaps":              http.StatusUnauthorized,
		"/api/v1/namespaces/kube-public/configmaps/other":        http.StatusUnauthorized,
		"/api/v1/namespaces/kube-public/configmaps/cluster-info": http.StatusOK,
	} {
		resp, err := anonymous.Get(env.Config.Host + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("anonymous GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// TestPodSecurity creates pods that break the baseline Pod Security Standard: refused in a
// user's namespace, naming the field, and let in to gantry-system.
func TestPodSecurity(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	ns := newNamespace(t, env.Client)
	pod := func(name string, mutate func(*corev1.PodSpec)) *corev1.Pod {
		p := podWith(name, corev1.Container{Name: "c", Image: "127.0.0.1:5000/hello"})
		mutate(&p.Spec)
		return p
	}
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	for _, tc := range []struct {
		name   string
		mutate func(*corev1.PodSpec)
		want   []string // in the refusal
	}{
		{"privileged", func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
		}, []string{"spec.containers[0].securityContext.privileged"}},
		{"host network", func(s *corev1.PodSpec) { s.HostNetwork = true }, []string{"PodSecurity", "baseline", "hostNetwork=true"}},
		{"host path", func(s *corev1.PodSpec) {
			s.Volumes = []corev1.Volume{{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
		}, []string{"PodSecurity", "hostPath volumes", `"root"`}},
		{"added capability", func(s *corev1.PodSpec) {
			s.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}}
		}, []string{"PodSecurity", "non-default capabilities", "SYS_ADMIN"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, where := range []string{ns, metav1.NamespaceDefault} {
				_, err := env.Client.CoreV1().Pods(where).Create(ctx, pod("bad", tc.mutate), dryRun)
				if err == nil {
					t.Fatalf("a pod with %s was let into %s", tc.name, where)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("refusal in %s = %q, want it to say %q", where, err, w)
					}
				}
			}
			if tc.name == "privileged" { // no namespace allows these
				return
			}
			if _, err := env.Client.CoreV1().Pods(config.Namespace).Create(ctx, pod("exempt", tc.mutate), dryRun); err != nil {
				t.Errorf("a pod with %s in %s (exempt): %v", tc.name, config.Namespace, err)
			}
		})
	}
	// What baseline allows stays allowed.
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod("fine", func(*corev1.PodSpec) {}), dryRun); err != nil {
		t.Errorf("a plain pod: %v", err)
	}
}

// TestNodeActsAsANode checks that the serverless node's identity is a node's, which the Node
// authorizer and NodeRestriction hold to its own Node and pods.
func TestNodeActsAsANode(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ctx := context.Background()
	cfg, err := env.ControlPlane.NodeRESTConfig("gantry")
	if err != nil {
		t.Fatal(err)
	}
	asNode, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := asNode.CoreV1().Nodes().Get(ctx, "gantry", metav1.GetOptions{}); err != nil {
		t.Errorf("the node cannot read its own Node: %v", err)
	}
	other := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "not-gantry"}}
	if _, err := asNode.CoreV1().Nodes().Create(ctx, other, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); !apierrors.IsForbidden(err) {
		t.Errorf("the node creating another Node: err = %v, want forbidden (NodeRestriction)", err)
	}
	if _, err := asNode.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the node listing secrets: err = %v, want forbidden (Node authorizer)", err)
	}
}

// TestAPIServerChecksKubeletCertificates: a Node whose kubelet endpoint answers with a
// certificate the cluster CA did not sign gets no exec or logs request: the API server refuses
// the connection instead of sending the request (with the pod's logs or a shell) to whoever
// answers at the node's address.
func TestAPIServerChecksKubeletCertificates(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	impostor := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("impostor's logs"))
	}))
	defer impostor.Close()
	port, err := strconv.Atoi(impostor.URL[strings.LastIndex(impostor.URL, ":")+1:])
	if err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "impostor"}}
	if _, err := env.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Client.CoreV1().Nodes().Delete(ctx, "impostor", metav1.DeleteOptions{}) }()
	// The controller-manager writes to a new Node too (its pod range, its taints): read it again
	// on a conflict instead of failing on a race with it.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := env.Client.CoreV1().Nodes().Get(ctx, "impostor", metav1.GetOptions{})
		if err != nil {
			return err
		}
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
		node.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(port)
		_, err = env.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t, env.Client)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "on-impostor"},
		Spec: corev1.PodSpec{NodeName: "impostor", Containers: []corev1.Container{{Name: "c", Image: "127.0.0.1:5000/hello"}},
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
	}
	if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	body, err := env.Client.CoreV1().Pods(ns).GetLogs("on-impostor", &corev1.PodLogOptions{Container: "c"}).DoRaw(ctx)
	if err == nil || strings.Contains(string(body), "impostor's logs") {
		t.Fatalf("logs through a kubelet whose certificate the CA did not sign: %q, %v; want a refusal", body, err)
	}
	if !strings.Contains(string(body), "certificate signed by unknown authority") {
		t.Errorf("the refusal %q (%v) does not say it is the certificate", body, err)
	}
}

// TestQuietWatchGetsBookmarks: a watch on a kind nobody writes still learns the current
// revision (a bookmark), with or without the API server's watch cache, so that when it starts
// again it starts from a revision etcd still has instead of listing everything again.
func TestQuietWatchGetsBookmarks(t *testing.T) {
	env := testenv.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	quiet := newNamespace(t, env.Client)
	// The controller-manager writes a ConfigMap into every namespace: none carries this label.
	selector := "gantry.test/quiet=true"
	list, err := env.Client.CoreV1().ConfigMaps(quiet).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	w, err := env.Client.CoreV1().ConfigMaps(quiet).Watch(ctx, metav1.ListOptions{
		LabelSelector: selector, ResourceVersion: list.ResourceVersion, AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	// A write elsewhere moves etcd's revision past the watch's.
	elsewhere := newNamespace(t, env.Client)
	cm, err := env.Client.CoreV1().ConfigMaps(elsewhere).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "moves-the-revision"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	written, _ := strconv.ParseUint(cm.ResourceVersion, 10, 64)
	// The test environment's etcd reports progress every two seconds (a minute by default);
	// the watch cache, when on, sends its own bookmarks about as often.
	deadline := time.After(75 * time.Second)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the watch ended before a bookmark")
			}
			if ev.Type != watch.Bookmark {
				t.Fatalf("event %s on a watch of ConfigMaps nobody writes", ev.Type)
			}
			rv, _ := strconv.ParseUint(ev.Object.(*corev1.ConfigMap).ResourceVersion, 10, 64)
			if rv >= written {
				return
			}
			t.Logf("bookmark at %d, before the write at %d", rv, written)
		case <-deadline:
			t.Fatalf("no bookmark at or past revision %d in 75 s on a quiet watch", written)
		}
	}
}
