package kn

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

func TestNewService(t *testing.T) {
	env, _ := ParseKeyValues("env", []string{"TARGET=Gantry"})
	ann, _ := ParseKeyValues("annotation", []string{"team=web", "autoscaling.knative.dev/window=6s"})
	port, cc, lo, hi := int32(9000), int64(10), 1, 5
	svc, err := NewService("default", "hello", ServiceOptions{
		Image: "127.0.0.1:5000/hello", Env: env, Annotations: ann, Port: &port, ConcurrencyLimit: &cc, ScaleMin: &lo, ScaleMax: &hi,
		Tags: []TagAssignment{{Ref: LatestRef, Tag: "current"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &servingv1.Service{}
	want.APIVersion, want.Kind = "serving.knative.dev/v1", "Service"
	want.Namespace, want.Name = "default", "hello"
	want.Annotations = map[string]string{"team": "web"}
	want.Spec.Template.Annotations = map[string]string{
		"team": "web", "autoscaling.knative.dev/window": "6s",
		"autoscaling.knative.dev/min-scale": "1", "autoscaling.knative.dev/max-scale": "5",
	}
	want.Spec.Template.Spec.ContainerConcurrency = &cc
	want.Spec.Template.Spec.Containers = []corev1.Container{{
		Image: "127.0.0.1:5000/hello",
		Env:   []corev1.EnvVar{{Name: "TARGET", Value: "Gantry"}},
		Ports: []corev1.ContainerPort{{ContainerPort: 9000}},
	}}
	want.Spec.Traffic = []servingv1.TrafficTarget{latestTarget(100, "current")}
	if diff := cmp.Diff(want, svc); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}

	if _, err := NewService("default", "hello", ServiceOptions{}); !errors.Is(err, ErrNoImage) {
		t.Errorf("without an image: err = %v, want ErrNoImage", err)
	}
}

func TestApplyServiceOptionsKeepsWhatIsNotGiven(t *testing.T) {
	svc, err := NewService("default", "hello", ServiceOptions{Image: "img:1", Env: KeyValues{Set: []KeyValue{{"A", "1"}, {"B", "2"}}}})
	if err != nil {
		t.Fatal(err)
	}
	env, _ := ParseKeyValues("env", []string{"A-", "B=3", "C=4"})
	if err := ApplyServiceOptions(svc, ServiceOptions{Env: env}); err != nil {
		t.Fatal(err)
	}
	c := svc.Spec.Template.Spec.Containers[0]
	if c.Image != "img:1" {
		t.Errorf("image = %q, want it kept", c.Image)
	}
	wantEnv := []corev1.EnvVar{{Name: "B", Value: "3"}, {Name: "C", Value: "4"}}
	if diff := cmp.Diff(wantEnv, c.Env); diff != "" {
		t.Errorf("env (-want +got)\n%s", diff)
	}
	// A traffic change that does not fit leaves the service as it was.
	before := svc.DeepCopy()
	err = ApplyServiceOptions(svc, ServiceOptions{Image: "img:2", Untags: []string{"nope"}})
	if err == nil {
		t.Fatal("untagging a missing tag: no error")
	}
	if diff := cmp.Diff(before, svc); diff != "" {
		t.Errorf("a refused change changed the service (-before +after)\n%s", diff)
	}
}

func TestValidateScale(t *testing.T) {
	i := func(v int) *int { return &v }
	for _, tt := range []struct {
		lo, hi *int
		ok     bool
	}{
		{nil, nil, true}, {i(0), i(3), true}, {i(2), i(0), true}, {i(3), i(3), true},
		{i(4), i(3), false}, {i(-1), nil, false}, {nil, i(-1), false},
	} {
		if err := ValidateScale(tt.lo, tt.hi); (err == nil) != tt.ok {
			t.Errorf("ValidateScale(%v, %v) = %v, want ok %v", tt.lo, tt.hi, err, tt.ok)
		}
	}
}
