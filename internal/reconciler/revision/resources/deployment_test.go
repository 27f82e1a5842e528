package resources

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

func revision() *servingv1.Revision {
	rev := &servingv1.Revision{
		ObjectMeta: metav1.ObjectMeta{
			Name: "hello-00001", Namespace: "ns", UID: "rev-uid",
			Labels: map[string]string{servingv1.ConfigurationLabelKey: "hello", servingv1.ServiceLabelKey: "hello"},
		},
		Spec: servingv1.RevisionSpec{
			PodSpec: corev1.PodSpec{Containers: []corev1.Container{{
				Name:  "user-container",
				Image: "registry/hello:latest",
				Ports: []corev1.ContainerPort{{ContainerPort: 9000}},
				Env:   []corev1.EnvVar{{Name: "TARGET", Value: "x"}},
			}, {
				Name:  "sidecar",
				Image: "registry/side:1",
			}}},
			ContainerConcurrency: ptr.To[int64](5),
			TimeoutSeconds:       ptr.To[int64](60),
		},
	}
	rev.Status.ContainerStatuses = []servingv1.ContainerStatus{
		{Name: "user-container", ImageDigest: "registry/hello@sha256:aaa"},
		{Name: "sidecar", ImageDigest: "registry/side@sha256:bbb"},
	}
	return rev
}

func envMap(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func TestMakeDeployment(t *testing.T) {
	rev := revision()
	d := MakeDeployment(rev, config.NewConfig())
	if d.Name != "hello-00001-deployment" || !metav1.IsControlledBy(d, rev) {
		t.Fatalf("deployment %s, controlled=%v", d.Name, metav1.IsControlledBy(d, rev))
	}
	if diff := cmp.Diff(map[string]string{servingv1.RevisionUID: "rev-uid"}, d.Spec.Selector.MatchLabels); diff != "" {
		t.Errorf("selector (-want +got):\n%s", diff)
	}
	if got := ptr.Deref(d.Spec.Replicas, -1); got != 1 {
		t.Errorf("replicas = %d, want the initial scale 1", got)
	}
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 3 || cs[2].Name != contract.ContainerName {
		t.Fatalf("containers = %d, want user-container, sidecar, queue-proxy", len(cs))
	}
	if cs[0].Image != "registry/hello@sha256:aaa" || cs[1].Image != "registry/side@sha256:bbb" {
		t.Errorf("images = %s, %s; want the resolved digests", cs[0].Image, cs[1].Image)
	}
	wantUser := map[string]string{"PORT": "9000", "TARGET": "x", "K_REVISION": "hello-00001", "K_CONFIGURATION": "hello", "K_SERVICE": "hello"}
	if diff := cmp.Diff(wantUser, envMap(cs[0])); diff != "" {
		t.Errorf("user env (-want +got):\n%s", diff)
	}
	if _, ok := envMap(cs[1])["PORT"]; ok {
		t.Error("the sidecar got PORT; only the serving container does")
	}
	qp := envMap(cs[2])
	for k, v := range map[string]string{"USER_PORT": "9000", "CONTAINER_CONCURRENCY": "5", "REVISION_TIMEOUT_SECONDS": "60", "QUEUE_SERVING_PORT": "8012"} {
		if qp[k] != v {
			t.Errorf("queue-proxy env %s = %q, want %q", k, qp[k], v)
		}
	}
	if got := ptr.Deref(d.Spec.Template.Spec.TerminationGracePeriodSeconds, 0); got != 70 {
		t.Errorf("terminationGracePeriodSeconds = %d, want the revision timeout 60 + 10 to drain", got)
	}
	probe := d.Spec.Template.Spec.Containers[len(d.Spec.Template.Spec.Containers)-1].ReadinessProbe
	if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Port.IntValue() != contract.AdminPort || probe.FailureThreshold != 1 {
		t.Errorf("queue-proxy readiness probe = %+v, want HTTP GET on the admin port, one failure", probe)
	}
	if rev.Spec.Containers[0].Image != "registry/hello:latest" || len(rev.Spec.Containers[0].Env) != 1 {
		t.Error("MakeDeployment changed the revision's own spec")
	}
}

// TestQueueH2CPort: the queue-proxy of a revision whose port is named h2c serves Knative's h2c
// port too (declared, and told by its environment); an HTTP/1 revision's does not.
func TestQueueH2CPort(t *testing.T) {
	for _, h2c := range []bool{false, true} {
		rev := revision()
		if h2c {
			rev.Spec.Containers[0].Ports[0].Name = "h2c"
		}
		d := MakeDeployment(rev, config.NewConfig())
		var q corev1.Container
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name == contract.ContainerName {
				q = c
			}
		}
		declared := false
		for _, p := range q.Ports {
			if p.Name == contract.H2CPortName && p.ContainerPort == contract.H2CPort {
				declared = true
			}
		}
		env, set := envMap(q)[contract.EnvH2CPort]
		if declared != h2c || set != h2c || (h2c && env != "8013") {
			t.Errorf("h2c %v: port %s declared %v, %s=%q set %v; want both %v (8013)", h2c, contract.H2CPortName, declared, contract.EnvH2CPort, env, set, h2c)
		}
	}
}

func TestInitialReplicas(t *testing.T) {
	zeroByDefault := config.NewAutoscaler()
	zeroByDefault.InitialScale, zeroByDefault.AllowZeroInitialScale = 0, true
	atLeastTwo := config.NewAutoscaler()
	atLeastTwo.MinScale = 2
	for _, tt := range []struct {
		ann  map[string]string
		as   *config.Autoscaler
		want int32
	}{
		{nil, config.NewAutoscaler(), 1},
		{map[string]string{"autoscaling.knative.dev/initial-scale": "3"}, config.NewAutoscaler(), 3},
		{map[string]string{"autoscaling.knative.dev/initial-scale": "0"}, config.NewAutoscaler(), 0},
		{map[string]string{"autoscaling.knative.dev/initial-scale": "1", "autoscaling.knative.dev/min-scale": "4"}, config.NewAutoscaler(), 4},
		{map[string]string{"autoscaling.knative.dev/initial-scale": "garbage"}, config.NewAutoscaler(), 1},
		{nil, zeroByDefault, 0},
		{map[string]string{"autoscaling.knative.dev/initial-scale": "2"}, zeroByDefault, 2},
		{nil, atLeastTwo, 2},
		{map[string]string{"autoscaling.knative.dev/min-scale": "0"}, atLeastTwo, 1},
	} {
		rev := revision()
		rev.Annotations = tt.ann
		if got := InitialReplicas(rev, tt.as); got != tt.want {
			t.Errorf("InitialReplicas(%v, initial-scale %d, min-scale %d) = %d, want %d", tt.ann, tt.as.InitialScale, tt.as.MinScale, got, tt.want)
		}
	}
}

func TestMakePrivateService(t *testing.T) {
	rev := revision()
	s := MakePrivateService(rev)
	if s.Name != "hello-00001-private" || s.Spec.Selector[servingv1.RevisionUID] != "rev-uid" {
		t.Errorf("service %s selects %v", s.Name, s.Spec.Selector)
	}
	if s.Spec.Ports[0].Port != 80 || s.Spec.Ports[0].TargetPort.IntValue() != contract.HTTPPort {
		t.Errorf("http port = %d → %s, want 80 → %d", s.Spec.Ports[0].Port, s.Spec.Ports[0].TargetPort.String(), contract.HTTPPort)
	}
}
