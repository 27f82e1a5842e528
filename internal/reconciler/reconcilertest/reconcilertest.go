// Package reconcilertest holds what the serving reconcilers' tests share: a scheme with the
// Kubernetes built-ins, serving.knative.dev/v1 and the internal kinds, a fake client that
// serves those kinds' status subresource, and a way to read the events a reconcile recorded.
// Only tests import it.
package reconcilertest

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// Scheme knows the Kubernetes built-ins, serving.knative.dev/v1, the Ingress and the
// PodAutoscaler.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := errors.Join(clientgoscheme.AddToScheme(s), servingv1.AddToScheme(s), netv1alpha1.AddToScheme(s), pav1alpha1.AddToScheme(s)); err != nil {
		panic(fmt.Sprintf("building the test scheme: %v", err))
	}
	return s
}

// NewClient is a fake client builder over Scheme whose serving kinds have a status
// subresource, as the CRDs declare: Update leaves status alone and Status().Update leaves
// the rest alone.
func NewClient() *fake.ClientBuilder {
	return fake.NewClientBuilder().
		WithScheme(Scheme()).
		WithStatusSubresource(&servingv1.Service{}, &servingv1.Configuration{}, &servingv1.Revision{}, &servingv1.Route{}, &netv1alpha1.Ingress{},
			&pav1alpha1.PodAutoscaler{})
}

// NewRecorder records events for Events to read.
func NewRecorder() *events.FakeRecorder { return events.NewFakeRecorder(100) }

// Events returns the events recorded since the last call, as "<type> <reason> <note>".
func Events(r *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-r.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}
