package install

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/gatewayapi"
	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

func toUnstructured(t *testing.T, o runtime.Object) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

// TestMadeByGatewayAPI: what the gateway-api controllers make (as their own functions make
// it) is found for removal; a Service a user labelled alike, with a selector or another
// owner, and the revision's private Service are not.
func TestMadeByGatewayAPI(t *testing.T) {
	rev := &servingv1.Revision{
		TypeMeta:   metav1.TypeMeta{APIVersion: servingv1.SchemeGroupVersion.String(), Kind: "Revision"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hello-00001", UID: "rev-uid"},
	}
	ing := &netv1alpha1.Ingress{
		TypeMeta:   metav1.TypeMeta{APIVersion: netv1alpha1.SchemeGroupVersion.String(), Kind: "Ingress"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hello", UID: "ing-uid"},
		Spec: netv1alpha1.IngressSpec{Rules: []netv1alpha1.IngressRule{{
			Hosts: []string{"hello.default.example.com"}, Visibility: netv1alpha1.IngressVisibilityExternalIP,
			HTTP: &netv1alpha1.HTTPIngressRuleValue{Paths: []netv1alpha1.HTTPIngressPath{{Splits: []netv1alpha1.IngressBackendSplit{{
				IngressBackend: netv1alpha1.IngressBackend{ServiceNamespace: "default", ServiceName: "hello-00001"}, Percent: 100}}}}},
		}}},
	}
	svc := gatewayapi.MakeBackendService(rev, false)
	slice, _ := gatewayapi.MakeBackendEndpointSlice(rev, gatewayapi.Backends{})
	routes := gatewayapi.MakeHTTPRoutes(ing, gatewayapi.Gateways{External: types.NamespacedName{Namespace: "gw", Name: "external"}}, nil)
	withSelector := svc.DeepCopy()
	withSelector.Spec.Selector = map[string]string{"app": "hello"}
	ownedElsewhere := svc.DeepCopy()
	ownedElsewhere.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "x", UID: "u", Controller: ptr.To(true)}}
	private := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "hello-00001-private",
		Labels: map[string]string{servingv1.RevisionLabelKey: "hello-00001"}, OwnerReferences: svc.OwnerReferences},
		Spec: corev1.ServiceSpec{Selector: map[string]string{servingv1.RevisionUID: "rev-uid"}}}

	for _, tc := range []struct {
		name string
		kind string
		obj  runtime.Object
		want bool
	}{
		{"the revision's backend Service", "Service", svc, true},
		{"its EndpointSlice", "EndpointSlice", slice, true},
		{"the Ingress's HTTPRoute", "HTTPRoute", routes[0], true},
		{"a Service alike with a selector", "Service", withSelector, false},
		{"a Service alike owned by something else", "Service", ownedElsewhere, false},
		{"the revision's private Service", "Service", private, false},
	} {
		if got := madeByGatewayAPI(tc.kind, toUnstructured(t, tc.obj)); got != tc.want {
			t.Errorf("%s: madeByGatewayAPI = %v, want %v", tc.name, got, tc.want)
		}
	}
}
