package kn

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/gantry-run/gantry/pkg/apis"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

func TestServiceNameFor(t *testing.T) {
	for dir, want := range map[string]string{
		"samples/hello":     "hello",
		"/src/My_App/":      "my-app",
		"./api.v2":          "api-v2",
		"/x/" + "-edge-":    "edge",
		"/home/me/Service1": "service1",
	} {
		got, err := ServiceNameFor(dir)
		if err != nil || got != want {
			t.Errorf("ServiceNameFor(%q) = %q, %v; want %q", dir, got, err, want)
		}
	}
	for _, dir := range []string{"/", "/tmp/123", "/tmp/" + strings.Repeat("a", 60)} {
		if got, err := ServiceNameFor(dir); err == nil {
			t.Errorf("ServiceNameFor(%q) = %q, want an error asking for --name", dir, got)
		} else if !strings.Contains(err.Error(), "--name") {
			t.Errorf("ServiceNameFor(%q): %v, want it to point at --name", dir, err)
		}
	}
}

func TestUnchanged(t *testing.T) {
	const digest = "sha256:94add181c4541efefea5d84e66426a1823e1c2626278e323bf03bde552f9e3a9"
	svc := &servingv1.Service{}
	svc.Generation = 2
	svc.Status.ObservedGeneration = 2
	svc.Status.Conditions = apis.Conditions{{Type: apis.ConditionReady, Status: corev1.ConditionTrue}}
	svc.Spec.Template.Spec.Containers = []corev1.Container{{Image: "127.0.0.1:5000/default/hello@" + digest}}
	rev := &servingv1.Revision{}
	rev.Status.ContainerStatuses = []servingv1.ContainerStatus{{Name: "user-container", ImageDigest: "127.0.0.1:5000/default/hello@" + digest}}
	if !Unchanged(svc, rev, digest) {
		t.Error("same digest, ready: Unchanged = false")
	}
	if Unchanged(svc, rev, "sha256:0000") {
		t.Error("another digest: Unchanged = true")
	}
	if Unchanged(svc, nil, digest) {
		t.Error("no ready revision: Unchanged = true")
	}
	stale := svc.DeepCopy()
	stale.Generation = 3
	if Unchanged(stale, rev, digest) {
		t.Error("a change not yet observed: Unchanged = true")
	}
	failed := svc.DeepCopy()
	failed.Status.Conditions[0].Status = corev1.ConditionFalse
	if Unchanged(failed, rev, digest) {
		t.Error("a Service not Ready: Unchanged = true")
	}
}
