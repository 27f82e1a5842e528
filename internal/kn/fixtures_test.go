package kn

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/pkg/apis"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// testNow is the time the fixtures' ages are counted to.
var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) metav1.Time { return metav1.NewTime(testNow.Add(-d)) }

func cond(t apis.ConditionType, s corev1.ConditionStatus, reason string, age time.Duration) apis.Condition {
	return apis.Condition{Type: t, Status: s, Reason: reason, LastTransitionTime: ago(age)}
}

func i32(v int32) *int32 { return &v }

const helloDigest = "127.0.0.1:5000/default/hello@sha256:94add181c4541efefea5d84e66426a1823e1c2626278e323bf03bde552f9e3a9"

// fixtureRevision is a revision of hello at generation gen.
func fixtureRevision(name, gen string, age time.Duration, ready corev1.ConditionStatus, reason string) servingv1.Revision {
	r := servingv1.Revision{}
	r.Namespace, r.Name = "default", name
	r.CreationTimestamp = ago(age)
	r.Labels = map[string]string{servingv1.ServiceLabelKey: "hello", servingv1.ConfigurationGenerationLabelKey: gen}
	r.Annotations = map[string]string{"autoscaling.knative.dev/min-scale": "1"}
	r.Spec.Containers = []corev1.Container{{
		Image: "127.0.0.1:5000/default/hello",
		Env:   []corev1.EnvVar{{Name: "TARGET", Value: "v" + gen}},
		Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
	}}
	cc := int64(10)
	r.Spec.ContainerConcurrency = &cc
	r.Status.ContainerStatuses = []servingv1.ContainerStatus{{Name: "user-container", ImageDigest: helloDigest}}
	r.Status.ActualReplicas, r.Status.DesiredReplicas = i32(1), i32(1)
	r.Status.Conditions = apis.Conditions{
		cond(apis.ConditionReady, ready, reason, age),
		cond(servingv1.RevisionConditionResourcesAvailable, corev1.ConditionTrue, "", age),
		cond(servingv1.RevisionConditionContainerHealthy, ready, reason, age),
		{Type: servingv1.RevisionConditionActive, Status: corev1.ConditionFalse, Severity: apis.ConditionSeverityInfo, Reason: "NoTraffic", LastTransitionTime: ago(time.Minute)},
	}
	return r
}

// fixtureHello is a Service split 80/20 between hello-00001 (tagged stable) and the latest,
// hello-00002, with hello-00003 failed.
func fixtureHello() (*servingv1.Service, []servingv1.Revision, *servingv1.Route) {
	s := &servingv1.Service{}
	s.Namespace, s.Name = "default", "hello"
	s.CreationTimestamp = ago(2 * time.Hour)
	url, _ := apis.ParseURL("http://hello.default.localhost")
	stable, _ := apis.ParseURL("http://stable-hello.default.localhost")
	s.Status.URL = url
	s.Status.LatestCreatedRevisionName = "hello-00003"
	s.Status.LatestReadyRevisionName = "hello-00002"
	yes, no := true, false
	p80, p20 := int64(80), int64(20)
	s.Status.Traffic = []servingv1.TrafficTarget{
		{RevisionName: "hello-00002", LatestRevision: &yes, Percent: &p20},
		{RevisionName: "hello-00001", LatestRevision: &no, Percent: &p80, Tag: "stable", URL: stable},
	}
	s.Status.Conditions = apis.Conditions{
		cond(servingv1.ServiceConditionRoutesReady, corev1.ConditionTrue, "", time.Hour),
		cond(servingv1.ServiceConditionConfigurationsReady, corev1.ConditionFalse, "RevisionFailed", 5*time.Minute),
		cond(apis.ConditionReady, corev1.ConditionFalse, "RevisionFailed", 5*time.Minute),
	}
	revs := []servingv1.Revision{
		fixtureRevision("hello-00001", "1", 2*time.Hour, corev1.ConditionTrue, ""),
		fixtureRevision("hello-00002", "2", time.Hour, corev1.ConditionTrue, ""),
		fixtureRevision("hello-00003", "3", 5*time.Minute, corev1.ConditionFalse, "ExitCode1"),
	}
	revs[2].Status.Conditions[0].Message = "Container failed with: panic: boom\ngoroutine 1"
	revs[2].Status.ActualReplicas = i32(0)

	rt := &servingv1.Route{}
	rt.Namespace, rt.Name = "default", "hello"
	rt.CreationTimestamp = ago(2 * time.Hour)
	rt.Labels = map[string]string{servingv1.ServiceLabelKey: "hello"}
	rt.Status.URL = url
	rt.Status.Traffic = s.Status.Traffic
	rt.Status.Conditions = apis.Conditions{
		cond(apis.ConditionReady, corev1.ConditionTrue, "", time.Hour),
		cond(servingv1.RouteConditionAllTrafficAssigned, corev1.ConditionTrue, "", time.Hour),
		cond(servingv1.RouteConditionIngressReady, corev1.ConditionTrue, "", time.Hour),
	}
	return s, revs, rt
}

// fixtureReady is a second Service, Ready at its first revision.
func fixtureReady() *servingv1.Service {
	s := &servingv1.Service{}
	s.Namespace, s.Name = "default", "api"
	s.CreationTimestamp = ago(90 * time.Second)
	url, _ := apis.ParseURL("http://api.default.localhost")
	s.Status.URL = url
	s.Status.LatestCreatedRevisionName = "api-00001"
	s.Status.LatestReadyRevisionName = "api-00001"
	s.Status.Conditions = apis.Conditions{
		cond(apis.ConditionReady, corev1.ConditionTrue, "", time.Minute),
		cond(servingv1.ServiceConditionConfigurationsReady, corev1.ConditionTrue, "", time.Minute),
		cond(servingv1.ServiceConditionRoutesReady, corev1.ConditionTrue, "", time.Minute),
	}
	return s
}
