package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/gantry-run/gantry/internal/testenv"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// helloService is a Service running the hello test image from the embedded registry.
func helloService(env *testenv.Env, t *testing.T, ns, name string) *servingv1.Service {
	t.Helper()
	return &servingv1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"team": "a"}},
		Spec: servingv1.ServiceSpec{ConfigurationSpec: servingv1.ConfigurationSpec{Template: servingv1.RevisionTemplateSpec{
			Spec: servingv1.RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{
				Image: env.Image(t, "hello"),
				Env:   []corev1.EnvVar{{Name: "TARGET", Value: "v1"}},
			}}}},
		}}},
	}
}

func get[T client.Object](t *testing.T, env *testenv.Env, ns, name string, obj T) T {
	t.Helper()
	if err := env.Ctrl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		t.Fatalf("getting %T %s/%s: %v", obj, ns, name, err)
	}
	return obj
}

func exists(ctx context.Context, env *testenv.Env, ns, name string, obj client.Object) (bool, error) {
	err := env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

func TestServiceCreatesItsChildren(t *testing.T) {
	env := testenv.Get(t)
	ns := newNamespace(t, env.Client)
	ctx := context.Background()
	if err := env.Ctrl.Create(ctx, helloService(env, t, ns, "hello")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Deployment of hello-00001", 30*time.Second, func(ctx context.Context) (bool, error) {
		return exists(ctx, env, ns, "hello-00001-deployment", &appsv1.Deployment{})
	})

	svc := get(t, env, ns, "hello", &servingv1.Service{})
	t.Run("admission defaulted the service", func(t *testing.T) {
		c := svc.Spec.Template.Spec.Containers[0]
		if c.Name != "user-container" || ptr.Deref(svc.Spec.Template.Spec.TimeoutSeconds, 0) != 300 {
			t.Errorf("container name %q, timeoutSeconds %v; want user-container, 300", c.Name, svc.Spec.Template.Spec.TimeoutSeconds)
		}
		if len(svc.Spec.Traffic) != 1 || ptr.Deref(svc.Spec.Traffic[0].Percent, 0) != 100 || !ptr.Deref(svc.Spec.Traffic[0].LatestRevision, false) {
			t.Errorf("traffic = %+v, want [{percent:100 latestRevision:true}]", svc.Spec.Traffic)
		}
		if got := svc.Annotations[servingv1.CreatorAnnotation]; got != "gantry-admin" {
			t.Errorf("creator annotation = %q, want gantry-admin", got)
		}
	})
	t.Run("configuration and route carry the service's name, labels and owner", func(t *testing.T) {
		cfg := get(t, env, ns, "hello", &servingv1.Configuration{})
		route := get(t, env, ns, "hello", &servingv1.Route{})
		for _, o := range []metav1.Object{cfg, route} {
			if !metav1.IsControlledBy(o, svc) {
				t.Errorf("%s is not controlled by the service", o.GetName())
			}
			if o.GetLabels()[servingv1.ServiceLabelKey] != "hello" || o.GetLabels()["team"] != "a" {
				t.Errorf("%s labels = %v, want service=hello and team=a", o.GetName(), o.GetLabels())
			}
		}
		if len(route.Spec.Traffic) != 1 || route.Spec.Traffic[0].ConfigurationName != "hello" {
			t.Errorf("route traffic = %+v, want the hello configuration", route.Spec.Traffic)
		}
	})
	t.Run("revision has its digest and labels", func(t *testing.T) {
		// Digests are resolved in the background: wait for the revision to record one.
		rev := &servingv1.Revision{}
		waitFor(t, "the revision's image digest", 30*time.Second, func(ctx context.Context) (bool, error) {
			if err := env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "hello-00001"}, rev); err != nil {
				return false, err
			}
			cs := rev.Status.ContainerStatuses
			return len(cs) == 1 && strings.Contains(cs[0].ImageDigest, "@sha256:"), fmt.Errorf("containerStatuses %+v", cs)
		})
		for k, v := range map[string]string{servingv1.ConfigurationLabelKey: "hello", servingv1.ServiceLabelKey: "hello", servingv1.ConfigurationGenerationLabelKey: "1"} {
			if rev.Labels[k] != v {
				t.Errorf("revision label %s = %q, want %q", k, rev.Labels[k], v)
			}
		}
	})
	t.Run("deployment runs the digest with the runtime contract and a queue-proxy", func(t *testing.T) {
		rev := get(t, env, ns, "hello-00001", &servingv1.Revision{})
		d := &appsv1.Deployment{}
		waitFor(t, "the revision's Deployment", 30*time.Second, func(ctx context.Context) (bool, error) {
			return exists(ctx, env, ns, "hello-00001-deployment", d)
		})
		cs := d.Spec.Template.Spec.Containers
		if len(cs) != 2 || cs[1].Name != "queue-proxy" {
			t.Fatalf("containers = %v, want user-container and queue-proxy", names(cs))
		}
		if cs[0].Image != rev.Status.ContainerStatuses[0].ImageDigest {
			t.Errorf("image = %q, want the digest %q", cs[0].Image, rev.Status.ContainerStatuses[0].ImageDigest)
		}
		vars := map[string]string{}
		for _, e := range cs[0].Env {
			vars[e.Name] = e.Value
		}
		for k, v := range map[string]string{"PORT": "8080", "K_SERVICE": "hello", "K_CONFIGURATION": "hello", "K_REVISION": "hello-00001", "TARGET": "v1"} {
			if vars[k] != v {
				t.Errorf("env %s = %q, want %q", k, vars[k], v)
			}
		}
		get(t, env, ns, "hello-00001-private", &corev1.Service{})
	})
	t.Run("revision readiness follows its pods", func(t *testing.T) {
		// With the serverless node the pod runs and the revision becomes Ready; without it
		// the pod cannot be scheduled and the revision says so.
		wantStatus, wantReason := "True", ""
		if !testenv.NodeRuns() {
			wantStatus, wantReason = "False", "Unschedulable"
		}
		waitFor(t, "revision Ready="+wantStatus+" "+wantReason, 120*time.Second, func(ctx context.Context) (bool, error) {
			rev := &servingv1.Revision{}
			if err := env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "hello-00001"}, rev); err != nil {
				return false, err
			}
			c := rev.Status.GetCondition(servingv1.RevisionConditionReady)
			return c != nil && string(c.Status) == wantStatus && c.Reason == wantReason, nil
		})
		if testenv.NodeRuns() {
			waitFor(t, "the route to send all traffic to hello-00001", 30*time.Second, func(ctx context.Context) (bool, error) {
				route := &servingv1.Route{}
				if err := env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "hello"}, route); err != nil {
					return false, err
				}
				return len(route.Status.Traffic) == 1 && route.Status.Traffic[0].RevisionName == "hello-00001" &&
					route.Status.GetCondition(servingv1.RouteConditionAllTrafficAssigned).IsTrue(), nil
			})
		}
		if testenv.NodeRuns() {
			waitFor(t, "the service to become Ready", 30*time.Second, func(ctx context.Context) (bool, error) {
				svc := &servingv1.Service{}
				err := env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "hello"}, svc)
				return err == nil && svc.IsReady(), err
			})
		}
		svc := get(t, env, ns, "hello", &servingv1.Service{})
		if !testenv.NodeRuns() && svc.IsReady() {
			t.Error("service is Ready although its revision has no pod")
		}
		if svc.Status.URL == nil || svc.Status.URL.String() != "http://hello."+ns+".localhost" {
			t.Errorf("service url = %v, want http://hello.%s.localhost", svc.Status.URL, ns)
		}
	})
	t.Run("events tell what happened", func(t *testing.T) {
		waitFor(t, "a Created event on the service", 30*time.Second, func(ctx context.Context) (bool, error) {
			evs, err := env.Client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=hello,involvedObject.kind=Service"})
			if err != nil {
				return false, err
			}
			for _, e := range evs.Items {
				if e.Reason == "Created" && strings.Contains(e.Message, `Created Configuration "hello"`) {
					return true, nil
				}
			}
			return false, nil
		})
	})
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func TestUpdatesStampRevisionsOnlyForTemplateChanges(t *testing.T) {
	env := testenv.Get(t)
	ns := newNamespace(t, env.Client)
	ctx := context.Background()
	if err := env.Ctrl.Create(ctx, helloService(env, t, ns, "web")); err != nil {
		t.Fatal(err)
	}
	waitForRevision(t, env, ns, "web-00001")

	// A metadata-only change propagates to the children but stamps no revision.
	update(t, env, ns, "web", func(s *servingv1.Service) { s.Labels["team"] = "b" })
	waitFor(t, "the new label on the configuration", 30*time.Second, func(ctx context.Context) (bool, error) {
		cfg := &servingv1.Configuration{}
		err := env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, cfg)
		return err == nil && cfg.Labels["team"] == "b", err
	})

	// A template change stamps web-00002.
	update(t, env, ns, "web", func(s *servingv1.Service) { s.Spec.Template.Spec.Containers[0].Env[0].Value = "v2" })
	waitForRevision(t, env, ns, "web-00002")
	waitFor(t, "latestCreatedRevisionName web-00002", 30*time.Second, func(ctx context.Context) (bool, error) {
		cfg := &servingv1.Configuration{}
		err := env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, cfg)
		return err == nil && cfg.Status.LatestCreatedRevisionName == "web-00002", err
	})

	// A traffic change moves the route and stamps nothing.
	update(t, env, ns, "web", func(s *servingv1.Service) {
		s.Spec.Traffic = []servingv1.TrafficTarget{
			{RevisionName: "web-00001", Percent: ptr.To[int64](50), Tag: "old"},
			{RevisionName: "web-00002", Percent: ptr.To[int64](50), Tag: "new"},
		}
	})
	waitFor(t, "the route to follow the traffic change", 30*time.Second, func(ctx context.Context) (bool, error) {
		route := &servingv1.Route{}
		err := env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, route)
		return err == nil && len(route.Spec.Traffic) == 2 && route.Spec.Traffic[1].RevisionName == "web-00002", err
	})
	// Once the Service and then its Configuration have observed their latest generation, a
	// wrongly stamped revision would exist: the Configuration reconciler is what stamps them.
	waitFor(t, "the service and configuration to observe the change", 30*time.Second, func(ctx context.Context) (bool, error) {
		svc, cfg := &servingv1.Service{}, &servingv1.Configuration{}
		if err := env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, svc); err != nil {
			return false, err
		}
		if err := env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, cfg); err != nil {
			return false, err
		}
		return svc.Status.ObservedGeneration == svc.Generation && cfg.Status.ObservedGeneration == cfg.Generation, nil
	})
	revs := &servingv1.RevisionList{}
	if err := env.Ctrl.List(ctx, revs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(revs.Items) != 2 {
		t.Errorf("%d revisions after a metadata, a template and a traffic change; want 2", len(revs.Items))
	}

	// Deleting the service deletes everything it owns.
	if err := env.Ctrl.Delete(ctx, &servingv1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}},
		client.PropagationPolicy(metav1.DeletePropagationForeground)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "garbage collection of the service's children", 60*time.Second, func(ctx context.Context) (bool, error) {
		for _, o := range []struct {
			name string
			obj  client.Object
		}{{"web", &servingv1.Configuration{}}, {"web", &servingv1.Route{}}, {"web-00001", &servingv1.Revision{}}, {"web-00002-deployment", &appsv1.Deployment{}}} {
			if ok, err := exists(ctx, env, ns, o.name, o.obj); ok || err != nil {
				return false, err
			}
		}
		return true, nil
	})
}

func waitForRevision(t *testing.T, env *testenv.Env, ns, name string) {
	t.Helper()
	waitFor(t, "revision "+name, 30*time.Second, func(ctx context.Context) (bool, error) {
		return exists(ctx, env, ns, name, &servingv1.Revision{})
	})
}

func update(t *testing.T, env *testenv.Env, ns, name string, mutate func(*servingv1.Service)) {
	t.Helper()
	for range 10 {
		svc := get(t, env, ns, name, &servingv1.Service{})
		mutate(svc)
		err := env.Ctrl.Update(context.Background(), svc)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			t.Fatalf("updating service %s: %v", name, err)
		}
	}
	t.Fatalf("updating service %s: conflicts", name)
}

func TestInvalidServicesAreRefusedWithTheFieldNamed(t *testing.T) {
	env := testenv.Get(t)
	ns := newNamespace(t, env.Client)
	tests := []struct {
		name    string
		mutate  func(*servingv1.Service)
		wantErr string
	}{
		{"traffic not summing to 100", func(s *servingv1.Service) {
			s.Spec.Traffic = []servingv1.TrafficTarget{{LatestRevision: ptr.To(true), Percent: ptr.To[int64](90)}}
		}, "traffic targets sum to 90, want 100: spec.traffic"},
		{"reserved env var", func(s *servingv1.Service) {
			s.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "K_SERVICE", Value: "x"}}
		}, "spec.template.spec.containers[0].env[0].name"},
		{"container concurrency out of range", func(s *servingv1.Service) {
			s.Spec.Template.Spec.ContainerConcurrency = ptr.To[int64](5000)
		}, "spec.template.spec.containerConcurrency"},
		{"bad min-scale", func(s *servingv1.Service) {
			s.Spec.Template.Annotations = map[string]string{"autoscaling.knative.dev/min-scale": "-1"}
		}, "autoscaling.knative.dev/min-scale"},
		{"privileged container", func(s *servingv1.Service) {
			s.Spec.Template.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
		}, "privileged"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := helloService(env, t, ns, "bad"+string(rune('a'+i)))
			tt.mutate(svc)
			err := env.Ctrl.Create(context.Background(), svc)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("create = %v, want a refusal naming %q", err, tt.wantErr)
			}
			if ok, _ := exists(context.Background(), env, ns, svc.Name, &servingv1.Service{}); ok {
				t.Error("the refused service was stored")
			}
		})
	}
}

// TestKnativeSampleManifests applies Knative's sample manifests unchanged and checks the
// children Knative would create, by name.
func TestKnativeSampleManifests(t *testing.T) {
	env := testenv.Get(t)
	tests := []struct {
		file      string
		revisions []string
	}{
		{"helloworld-go.yaml", []string{"helloworld-go-00001"}},
		{"autoscale.yaml", nil},
		{"traffic-split.yaml", []string{"hello-v2"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			ns := newNamespace(t, env.Client)
			data, err := os.ReadFile("../../pkg/apis/serving/v1/testdata/" + tt.file)
			if err != nil {
				t.Fatal(err)
			}
			svc := &servingv1.Service{}
			if err := yaml.Unmarshal(data, svc); err != nil {
				t.Fatal(err)
			}
			svc.Namespace, svc.Status = ns, servingv1.ServiceStatus{}
			if err := env.Ctrl.Create(context.Background(), svc); err != nil {
				t.Fatalf("applying %s: %v", tt.file, err)
			}
			revs := tt.revisions
			if revs == nil {
				revs = []string{svc.Name + "-00001"}
			}
			waitFor(t, "the configuration, route and revisions", 30*time.Second, func(ctx context.Context) (bool, error) {
				for _, o := range []struct {
					name string
					obj  client.Object
				}{{svc.Name, &servingv1.Configuration{}}, {svc.Name, &servingv1.Route{}}, {revs[0], &servingv1.Revision{}}} {
					if ok, err := exists(ctx, env, ns, o.name, o.obj); !ok || err != nil {
						return false, err
					}
				}
				return true, nil
			})
			// The samples' images live on registries this machine cannot reach: the
			// revision says so instead of pretending.
			waitFor(t, "an honest reason on the revision", 30*time.Second, func(ctx context.Context) (bool, error) {
				rev := &servingv1.Revision{}
				if err := env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: revs[0]}, rev); err != nil {
					return false, err
				}
				c := rev.Status.GetCondition(servingv1.RevisionConditionReady)
				return c != nil && !c.IsTrue() && c.Reason != "", nil
			})
		})
	}
}

func TestRevisionReportsACrashingContainer(t *testing.T) {
	env := testenv.Get(t)
	testenv.RequireNode(t)
	ns := newNamespace(t, env.Client)
	svc := helloService(env, t, ns, "crash")
	svc.Spec.Template.Spec.Containers[0].Image = env.Image(t, "failing")
	svc.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "DELAY", Value: "100ms"}}
	if err := env.Ctrl.Create(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the revision to fail with the container's exit code", 120*time.Second, func(ctx context.Context) (bool, error) {
		rev := &servingv1.Revision{}
		if err := env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "crash-00001"}, rev); err != nil {
			return false, nil
		}
		c := rev.Status.GetCondition(servingv1.RevisionConditionContainerHealthy)
		return c.IsFalse() && c.Reason == servingv1.ReasonExitCode && strings.Contains(c.Message, "exit code 5"), nil
	})
	waitFor(t, "the configuration to report the failed revision", 30*time.Second, func(ctx context.Context) (bool, error) {
		cfg := &servingv1.Configuration{}
		if err := env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "crash"}, cfg); err != nil {
			return false, err
		}
		c := cfg.Status.GetCondition(servingv1.ConfigurationConditionReady)
		return c.IsFalse() && strings.Contains(c.Message, "crash-00001"), nil
	})
}

func TestRouteWithAMissingTarget(t *testing.T) {
	env := testenv.Get(t)
	ns := newNamespace(t, env.Client)
	route := &servingv1.Route{
		ObjectMeta: metav1.ObjectMeta{Name: "orphan", Namespace: ns},
		Spec: servingv1.RouteSpec{Traffic: []servingv1.TrafficTarget{
			{RevisionName: "orphan-00042", Percent: ptr.To[int64](100), Tag: "gone"},
		}},
	}
	if err := env.Ctrl.Create(context.Background(), route); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "AllTrafficAssigned=False naming the missing revision", 30*time.Second, func(ctx context.Context) (bool, error) {
		r := &servingv1.Route{}
		if err := env.Ctrl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orphan"}, r); err != nil {
			return false, err
		}
		c := r.Status.GetCondition(servingv1.RouteConditionAllTrafficAssigned)
		return c.IsFalse() && strings.Contains(c.Message, `Revision "orphan-00042" referenced in traffic not found`) &&
			r.Status.URL != nil && r.Status.URL.String() == "http://orphan."+ns+".localhost", nil
	})
}
