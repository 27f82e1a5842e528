package serverless

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/poll"
	"github.com/gantry-run/gantry/internal/testenv"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	"github.com/gantry-run/gantry/pkg/apis/config"
	"github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// coldServices is how many Services of each kind BenchmarkKnativeColdStart wakes.
const coldServices = 10

// BenchmarkKnativeColdStart: Knative Services created at zero (no pod has run yet), half of
// them with pods a ServerlessProfile selects, half not; the first request of each, in turn,
// from send to the full response through the gateway and activator.
//
// The two kinds get the same CPU, so that only the placement differs: a pod on the shared node
// that asks for nothing gets the node's default cap, one vCPU (node.DefaultPodLimits), and the
// matching Services' user containers ask for 975m, which with the queue-proxy's 25m sizes
// their pods at 1 vCPU. GANTRY_BENCH_SMALLEST=1 leaves them unsized instead: 0.25 vCPU, the
// smallest size, which shows what the quota costs a start.
func BenchmarkKnativeColdStart(b *testing.B) {
	env := testenv.Get(b)
	testenv.RequireNode(b)
	ctx := context.Background()
	img := env.Image(b, "hello")
	if _, err := env.Server.Store.Pull(ctx, img); err != nil {
		b.Fatal(err)
	}
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
	for range b.N {
		ns := namespace(b, env, "bench-cold")
		hosts := make([]string, 2*coldServices)
		svcs := make([]*servingv1.Service, 2*coldServices)
		for j := range svcs {
			labels := map[string]string{}
			var resources corev1.ResourceRequirements
			if j%2 == 0 {
				labels["serverless"] = "yes"
				if os.Getenv("GANTRY_BENCH_SMALLEST") != "1" {
					cpu := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("975m")}
					resources = corev1.ResourceRequirements{Requests: cpu, Limits: cpu}
				}
			}
			svcs[j] = &servingv1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cold-%d", j), Namespace: ns},
				Spec: servingv1.ServiceSpec{ConfigurationSpec: servingv1.ConfigurationSpec{Template: servingv1.RevisionTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{
						autoscaling.InitialScaleAnnotationKey: "0",
						autoscaling.MinScaleAnnotationKey:     "0",
					}},
					Spec: servingv1.RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: img, Resources: resources}}}},
				}}},
			}
			if err := env.Ctrl.Create(ctx, svcs[j]); err != nil {
				b.Fatal(err)
			}
		}
		for j, svc := range svcs {
			poll.Until(b, "service "+svc.Name+" Ready", 3*time.Minute, func(ctx context.Context) (bool, error) {
				err := env.Ctrl.Get(ctx, client.ObjectKeyFromObject(svc), svc)
				return err == nil && svc.IsReady() && svc.Status.URL != nil, err
			})
			hosts[j] = svc.Status.URL.Host
		}
		var matching, other []time.Duration
		for j, host := range hosts {
			c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
			req, err := http.NewRequest(http.MethodGet, "http://"+env.GatewayAddr+"/", nil)
			if err != nil {
				b.Fatal(err)
			}
			req.Host = host
			start := time.Now()
			resp, err := c.Do(req)
			if err != nil {
				b.Fatalf("cold request to %s: %v", host, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			took := time.Since(start)
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("cold request to %s: %s", host, resp.Status)
			}
			if j%2 == 0 {
				matching = append(matching, took)
			} else {
				other = append(other, took)
			}
		}
		// The matching Services' pods ran on nodes of their own, at the size wanted.
		pods, err := env.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "serverless=yes"})
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range pods.Items {
			if p.Spec.NodeName == "gantry" {
				b.Errorf("pod %s of a matching Service ran on the shared node", p.Name)
			}
			b.Logf("pod %s: %s on %s", p.Name, p.Annotations[v1alpha1.CapacityProvisionedAnnotation], p.Spec.NodeName)
		}
		b.ReportMetric(ms(percentile(other, 50)), "shared-p50-ms")
		b.ReportMetric(ms(percentile(matching, 50)), "serverless-p50-ms")
		b.ReportMetric(ms(percentile(other, 95)), "shared-p95-ms")
		b.ReportMetric(ms(percentile(matching, 95)), "serverless-p95-ms")
		b.ReportMetric(ms(percentile(matching, 50)-percentile(other, 50)), "added-p50-ms")
		_ = env.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	}
}
