package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/testenv"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	"github.com/gantry-run/gantry/pkg/apis/config"
	sv1alpha1 "github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// resourceMetricsEnv is the test environment, when its node runs pods and serves their
// resource metrics; the test is skipped otherwise, saying why.
func resourceMetricsEnv(t *testing.T) *testenv.Env {
	t.Helper()
	env := testenv.Get(t)
	testenv.RequireNode(t)
	if env.Server.ResourceMetrics == nil {
		t.Skip("no resource metrics API: the node's address is loopback")
	}
	return env
}

// TestHPAResourceMetrics: a running pod's CPU and memory, per container, and the node's
// appear in metrics.k8s.io through the API server's aggregator, and kubectl top shows them.
func TestHPAResourceMetrics(t *testing.T) {
	env := resourceMetricsEnv(t)
	ns := newNamespace(t, env.Client)
	readyService(t, env, helloService(env, t, ns, "measured"))
	mc, err := metricsclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	agg, err := aggregator.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pod's metrics", 90*time.Second, func(ctx context.Context) (bool, error) {
		list, err := mc.MetricsV1beta1().PodMetricses(ns).List(ctx, metav1.ListOptions{LabelSelector: servingv1.ServiceLabelKey + "=measured"})
		if err != nil {
			// Say why: the APIService's conditions name an unreachable or refusing server.
			as, aerr := agg.ApiregistrationV1().APIServices().Get(ctx, "v1beta1.metrics.k8s.io", metav1.GetOptions{})
			if aerr != nil {
				return false, fmt.Errorf("%w; the APIService: %w", err, aerr)
			}
			return false, fmt.Errorf("%w; the APIService's conditions: %+v", err, as.Status.Conditions)
		}
		if len(list.Items) != 1 {
			return false, fmt.Errorf("%d pod metrics", len(list.Items))
		}
		m := list.Items[0]
		var names []string
		for _, c := range m.Containers {
			names = append(names, c.Name)
			if c.Usage.Memory().IsZero() {
				return false, fmt.Errorf("container %s: no memory: %v", c.Name, c.Usage)
			}
		}
		return strings.Join(names, ",") == "queue-proxy,user-container" && m.Window.Duration > 0,
			fmt.Errorf("containers %v, window %v", names, m.Window)
	})
	waitFor(t, "the node's metrics", 30*time.Second, func(ctx context.Context) (bool, error) {
		nodes, err := mc.MetricsV1beta1().NodeMetricses().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		return len(nodes.Items) == 1 && !nodes.Items[0].Usage.Cpu().IsZero(), fmt.Errorf("%+v", nodes.Items)
	})
	if _, err := mc.MetricsV1beta1().PodMetricses(ns).Get(context.Background(), "nope", metav1.GetOptions{}); err == nil {
		t.Error("metrics of a pod that does not exist: no error")
	}

	bin := os.Getenv("GANTRY_BIN")
	if bin == "" {
		return
	}
	for _, args := range [][]string{{"top", "pods", "-A"}, {"top", "nodes"}} {
		out, err := exec.Command(bin, append([]string{"kubectl", "--kubeconfig", env.ControlPlane.KubeconfigPath()}, args...)...).CombinedOutput()
		if err != nil {
			t.Errorf("kubectl %v: %v\n%s", args, err, out)
			continue
		}
		if !strings.Contains(string(out), "CPU") || !strings.Contains(string(out), "MEMORY") {
			t.Errorf("kubectl %v:\n%s", args, out)
		}
		if args[1] == "pods" && !strings.Contains(string(out), ns) {
			t.Errorf("kubectl top pods -A lacks namespace %s:\n%s", ns, out)
		}
	}
}

// TestHPAScalesOnCPU: a Service of class HPA with metric cpu gets a HorizontalPodAutoscaler
// owned by its PodAutoscaler; requests that burn CPU take it above one pod, and the
// PodAutoscaler reports the scale.
func TestHPAScalesOnCPU(t *testing.T) {
	env := resourceMetricsEnv(t)
	ns := newNamespace(t, env.Client)
	const rev = "burn-00001"
	svc := imageService(env, t, ns, "burn", "autoscale")
	svc.Spec.Template.Annotations = map[string]string{
		autoscaling.ClassAnnotationKey:    autoscaling.HPA,
		autoscaling.MetricAnnotationKey:   autoscaling.CPU,
		autoscaling.TargetAnnotationKey:   "50",
		autoscaling.MaxScaleAnnotationKey: "3",
	}
	svc.Spec.Template.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}
	svc = readyService(t, env, svc)
	ctx := context.Background()

	hpa, err := env.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, rev, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the revision's HPA: %v", err)
	}
	pa, err := podAutoscaler(ctx, env, ns, rev)
	if err != nil {
		t.Fatal(err)
	}
	if owner := metav1.GetControllerOf(hpa); owner == nil || owner.UID != pa.UID {
		t.Errorf("HPA owners %+v, want the PodAutoscaler", hpa.OwnerReferences)
	}
	if ptr.Deref(hpa.Spec.MinReplicas, 0) != 1 || hpa.Spec.MaxReplicas != 3 || hpa.Spec.ScaleTargetRef.Name != pa.Spec.ScaleTargetRef.Name {
		t.Errorf("HPA spec %+v, want 1 to 3 pods of %s", hpa.Spec, pa.Spec.ScaleTargetRef.Name)
	}

	// Four clients computing primes keep more than a core busy: 100m requested per pod and a
	// 50 % target want the maximum.
	l := startLoad(env, svc.Status.URL.Host, "/?prime=4000000", 4)
	began := time.Now()
	waitFor(t, "more than one pod", 4*time.Minute, func(ctx context.Context) (bool, error) {
		pa, err := podAutoscaler(ctx, env, ns, rev)
		if err != nil {
			return false, err
		}
		return ptr.Deref(pa.Status.DesiredScale, 0) > 1 && ptr.Deref(pa.Status.ActualScale, 0) > 1 && pa.Status.IsActive(),
			fmt.Errorf("status %+v", pa.Status)
	})
	t.Logf("more than one pod %s after the load began", time.Since(began).Round(time.Second))
	l.end(t)
	hpa, err = env.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, rev, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hpa.Status.CurrentMetrics) == 0 || hpa.Status.CurrentMetrics[0].Resource == nil ||
		ptr.Deref(hpa.Status.CurrentMetrics[0].Resource.Current.AverageUtilization, 0) == 0 {
		t.Errorf("HPA current metrics %+v, want a CPU utilisation", hpa.Status.CurrentMetrics)
	}
}

// TestHPAScalesOnMemory: metric memory with a target of 1 MiB per pod, which any pod's
// working set exceeds, takes a Service of class HPA to its max-scale.
func TestHPAScalesOnMemory(t *testing.T) {
	env := resourceMetricsEnv(t)
	ns := newNamespace(t, env.Client)
	const rev = "mem-00001"
	svc := helloService(env, t, ns, "mem")
	svc.Spec.Template.Annotations = map[string]string{
		autoscaling.ClassAnnotationKey:    autoscaling.HPA,
		autoscaling.MetricAnnotationKey:   autoscaling.Memory,
		autoscaling.TargetAnnotationKey:   "1",
		autoscaling.MaxScaleAnnotationKey: "2",
	}
	readyService(t, env, svc)
	waitFor(t, "two pods", 3*time.Minute, func(ctx context.Context) (bool, error) {
		pa, err := podAutoscaler(ctx, env, ns, rev)
		if err != nil {
			return false, err
		}
		return ptr.Deref(pa.Status.DesiredScale, 0) == 2 && ptr.Deref(pa.Status.ActualScale, 0) == 2,
			fmt.Errorf("status %+v", pa.Status)
	})
	hpa, err := env.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(context.Background(), rev, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m := hpa.Spec.Metrics; len(m) != 1 || m[0].Resource == nil || m[0].Resource.Name != corev1.ResourceMemory ||
		m[0].Resource.Target.AverageValue == nil || m[0].Resource.Target.AverageValue.Value() != 1<<20 {
		t.Errorf("HPA metrics %+v, want memory at 1Mi a pod", m)
	}
}

// TestServerlessPodMetrics: a pod on a serverless node of its own is measured too, so that
// kubectl top and the HPA see it.
func TestServerlessPodMetrics(t *testing.T) {
	env := resourceMetricsEnv(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	placementProfile(t, env, ns)
	createPod(t, env, ns, serverlessPod("measured-sl", env.Image(t, "hello"), nil))
	pod := waitPod(t, env, ns, "measured-sl", "running", 90*time.Second, running)
	if !strings.HasPrefix(pod.Spec.NodeName, sv1alpha1.NodeNamePrefix) {
		t.Fatalf("the pod runs on %q, not a serverless node", pod.Spec.NodeName)
	}
	mc, err := metricsclient.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the serverless pod's metrics", 90*time.Second, func(ctx context.Context) (bool, error) {
		m, err := mc.MetricsV1beta1().PodMetricses(ns).Get(ctx, "measured-sl", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return len(m.Containers) == 1 && m.Containers[0].Usage.Memory().Value() > 0, fmt.Errorf("containers %+v", m.Containers)
	})
}

// TestDefaultClassHPA: with config-autoscaler's pod-autoscaler-class set to the HPA class, a
// revision that names no class is scaled by an HPA; a revision made before keeps its KPA.
func TestDefaultClassHPA(t *testing.T) {
	env := testenv.Get(t)
	ns := newNamespace(t, env.Client)
	ctx := context.Background()
	before := helloService(env, t, ns, "before")
	if err := env.Ctrl.Create(ctx, before); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first revision's PodAutoscaler", time.Minute, func(ctx context.Context) (bool, error) {
		pa, err := podAutoscaler(ctx, env, ns, "before-00001")
		if err != nil {
			return false, err
		}
		return pa.Class() == autoscaling.KPA, fmt.Errorf("class %q", pa.Class())
	})
	if err := setConfig(t, env, config.AutoscalerConfigName, map[string]string{"pod-autoscaler-class": autoscaling.HPA}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the configuration store follows the ConfigMap by watch
	if err := env.Ctrl.Create(ctx, helloService(env, t, ns, "after")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new revision's HPA", time.Minute, func(ctx context.Context) (bool, error) {
		pa, err := podAutoscaler(ctx, env, ns, "after-00001")
		if err != nil {
			return false, err
		}
		if pa.Class() != autoscaling.HPA {
			return false, fmt.Errorf("class %q", pa.Class())
		}
		_, err = env.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "after-00001", metav1.GetOptions{})
		return err == nil, err
	})
	// A reconcile of the older revision under the new default leaves its class alone: a new
	// label on the revision makes one (its PodAutoscaler carries the revision's labels).
	rev := &servingv1.Revision{}
	if err := env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "before-00001"}, rev); err != nil {
		t.Fatal(err)
	}
	// A patch, not an update: the revision's controller writes its status meanwhile.
	unchanged := rev.DeepCopy()
	rev.Labels["touched"] = "yes"
	if err := env.Ctrl.Patch(ctx, rev, client.MergeFrom(unchanged)); err != nil {
		t.Fatal(err)
	}
	var pa *pav1alpha1.PodAutoscaler
	waitFor(t, "the older revision reconciled", time.Minute, func(ctx context.Context) (bool, error) {
		var err error
		if pa, err = podAutoscaler(ctx, env, ns, "before-00001"); err != nil {
			return false, err
		}
		return pa.Labels["touched"] == "yes", fmt.Errorf("labels %v", pa.Labels)
	})
	if pa.Class() != autoscaling.KPA {
		t.Errorf("the revision made before the change is now of class %q", pa.Class())
	}
	if _, err := env.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "before-00001", metav1.GetOptions{}); err == nil {
		t.Error("the revision made before the change got an HPA")
	}
}
