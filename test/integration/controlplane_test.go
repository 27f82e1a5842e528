package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gantry-run/gantry/internal/poll"
	"github.com/gantry-run/gantry/internal/testenv"
)

// waitFor waits until cond holds: the package's one way to wait, poll.Until.
var waitFor = poll.Until

// newNamespace creates a namespace for one test and deletes it afterwards.
func newNamespace(t *testing.T, c kubernetes.Interface) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-", ".", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = fmt.Sprintf("%s-%d", strings.Trim(name, "-"), time.Now().UnixNano()%100000)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := c.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = c.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	// Pods are refused in a namespace until the controller-manager has made its default
	// ServiceAccount; a test's first pod should not race it.
	waitFor(t, "the default ServiceAccount of "+name, 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := c.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, err
	})
	return name
}

func TestSystemNamespacesExist(t *testing.T) {
	env := testenv.Get(t)
	ctx := context.Background()
	for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		if _, err := env.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
			t.Errorf("namespace %s: %v", ns, err)
		}
	}
}

func TestAdminKubeconfigIsPrivateAndWorks(t *testing.T) {
	env := testenv.Get(t)
	path := env.ControlPlane.KubeconfigPath()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s mode = %v, want 0600", path, st.Mode().Perm())
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("loading %s: %v", path, err)
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
	if err != nil || string(raw) != "ok" {
		t.Fatalf("/readyz through the kubeconfig = %q, %v; want ok", raw, err)
	}
	// The admin is a cluster superuser: it may do anything, e.g. read secrets everywhere.
	if _, err := c.CoreV1().Secrets("kube-system").List(context.Background(), metav1.ListOptions{}); err != nil {
		t.Errorf("admin cannot list secrets: %v", err)
	}
}

func TestAnonymousRequestsAreRefused(t *testing.T) {
	env := testenv.Get(t)
	cfg := *env.Config
	cfg.CertFile, cfg.KeyFile = "", ""
	c, err := kubernetes.NewForConfig(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
	if !apierrors.IsForbidden(err) && !apierrors.IsUnauthorized(err) {
		t.Fatalf("anonymous list of namespaces: err = %v, want forbidden or unauthorized", err)
	}
}

func TestControllerManagerRuns(t *testing.T) {
	env := testenv.Get(t)
	ns := newNamespace(t, env.Client)
	// The service-account and root-CA publisher controllers fill every new namespace.
	waitFor(t, "the default ServiceAccount", 30*time.Second, func(ctx context.Context) (bool, error) {
		_, err := env.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	waitFor(t, "the kube-root-ca.crt ConfigMap", 30*time.Second, func(ctx context.Context) (bool, error) {
		cm, err := env.Client.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil && strings.Contains(cm.Data["ca.crt"], "BEGIN CERTIFICATE"), nil
	})
}

func TestDeploymentGetsReplicaSetAndUnscheduledPods(t *testing.T) {
	env := testenv.Get(t)
	ns := newNamespace(t, env.Client)
	ctx := context.Background()
	replicas := int32(2)
	labels := map[string]string{"app": "hello"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "hello", Image: "example.invalid/hello"}}},
			},
		},
	}
	if _, err := env.Client.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a ReplicaSet owned by the Deployment", 30*time.Second, func(ctx context.Context) (bool, error) {
		rss, err := env.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		return len(rss.Items) == 1 && metav1.IsControlledBy(&rss.Items[0], mustGetDeployment(t, env, ns, "hello")), nil
	})
	// The scheduler places the pods on the serverless node; without the node it marks them
	// unschedulable and says why.
	waitFor(t, "two pods the scheduler placed or found no node for", 30*time.Second, func(ctx context.Context) (bool, error) {
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil || len(pods.Items) != 2 {
			return false, err
		}
		for _, p := range pods.Items {
			placed := p.Spec.NodeName == "gantry"
			if testenv.NodeRuns() != placed || (!placed && !unschedulable(p)) {
				return false, nil
			}
		}
		return true, nil
	})
}

func mustGetDeployment(t *testing.T, env *testenv.Env, ns, name string) *appsv1.Deployment {
	d, err := env.Client.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func unschedulable(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return true
		}
	}
	return false
}

func TestServicesGetClusterIPsFromTheServiceRange(t *testing.T) {
	env := testenv.Get(t)
	ns := newNamespace(t, env.Client)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}
	got, err := env.Client.CoreV1().Services(ns).Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, cidr, _ := net.ParseCIDR("10.43.0.0/16")
	if ip := net.ParseIP(got.Spec.ClusterIP); ip == nil || !cidr.Contains(ip) {
		t.Errorf("clusterIP = %q, want an address in %s", got.Spec.ClusterIP, cidr)
	}
}

func TestObjectsAreStoredAndInvalidOnesRefused(t *testing.T) {
	env := testenv.Get(t)
	ns := newNamespace(t, env.Client)
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"k": "v"}}
	if _, err := env.Client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bad := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "Not_A_Name"}}
	_, err := env.Client.CoreV1().ConfigMaps(ns).Create(ctx, bad, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "metadata.name") {
		t.Fatalf("creating an invalid ConfigMap: err = %v, want Invalid naming metadata.name", err)
	}
	got, err := env.Client.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
	if err != nil || got.Data["k"] != "v" {
		t.Fatalf("stored ConfigMap = %v, %v; want data k=v", got, err)
	}
}
