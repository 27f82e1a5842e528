package gatewayapi

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

func testRevision() *servingv1.Revision {
	return &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{
		Name: "hello-00001", Namespace: "default", UID: "rev-uid",
		Labels: map[string]string{
			"serving.knative.dev/configuration": "hello",
			"serving.knative.dev/service":       "hello",
			"serving.knative.dev/routingState":  "active",
		},
	}}
}

var wantOwner = []metav1.OwnerReference{{
	APIVersion: "serving.knative.dev/v1", Kind: "Revision", Name: "hello-00001", UID: "rev-uid",
	Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
}}

// Knative's labels of a public serverless service, without the revision's routing state.
var wantLabels = map[string]string{
	"serving.knative.dev/configuration":                 "hello",
	"serving.knative.dev/service":                       "hello",
	"serving.knative.dev/revision":                      "hello-00001",
	"serving.knative.dev/revisionUID":                   "rev-uid",
	"networking.internal.knative.dev/serverlessservice": "hello-00001",
	"networking.internal.knative.dev/serviceType":       "Public",
}

func TestMakeBackendService(t *testing.T) {
	for _, tc := range []struct {
		name string
		h2c  bool
		port corev1.ServicePort
	}{{
		name: "HTTP/1",
		port: corev1.ServicePort{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8012)},
	}, {
		name: "h2c: Knative's h2c port 81 to the queue-proxy's 8013, saying h2c to the Gateway API implementation",
		h2c:  true,
		port: corev1.ServicePort{Name: "http2", Protocol: corev1.ProtocolTCP, Port: 81, TargetPort: intstr.FromInt32(8013), AppProtocol: ptr.To("kubernetes.io/h2c")},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			want := &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "hello-00001", Namespace: "default", Labels: wantLabels, OwnerReferences: wantOwner},
				// No selector: the EndpointSlice is kept by hand.
				Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: []corev1.ServicePort{tc.port}},
			}
			if diff := cmp.Diff(want, MakeBackendService(testRevision(), tc.h2c)); diff != "" {
				t.Errorf("Service (-want +got):\n%s", diff)
			}
		})
	}
}

func endpoint(ip string, ready bool) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}, NodeName: ptr.To("node")}
}

func source(service string, addrType discoveryv1.AddressType, port int32, eps ...discoveryv1.Endpoint) discoveryv1.EndpointSlice {
	return discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: addrType,
		Endpoints:   eps,
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("http-autometric"), Port: ptr.To[int32](9090)},
			{Name: ptr.To("http"), Port: ptr.To(port)},
		},
	}
}

func wantEndpoint(ip string) discoveryv1.Endpoint {
	return discoveryv1.Endpoint{
		Addresses:  []string{ip},
		Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
		NodeName:   ptr.To("node"),
	}
}

func TestMakeBackendEndpointSlice(t *testing.T) {
	const v4, v6 = discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6
	pods := []discoveryv1.EndpointSlice{
		source("hello-00001-private", v4, 8012, endpoint("10.0.0.9", true), endpoint("10.0.0.3", true), endpoint("10.0.0.5", false)),
		source("hello-00001-private", v4, 8012, endpoint("10.0.0.3", true)), // once, though in two slices
	}
	activator := []discoveryv1.EndpointSlice{source("gantry-activator", v4, 8013, endpoint("10.0.1.1", true), endpoint("10.0.1.2", false))}
	podEndpoints := []discoveryv1.Endpoint{wantEndpoint("10.0.0.3"), wantEndpoint("10.0.0.9")}
	activatorEndpoints := []discoveryv1.Endpoint{wantEndpoint("10.0.1.1")}
	for _, tc := range []struct {
		name          string
		b             Backends
		wantActivator bool
		addrType      discoveryv1.AddressType
		eps           []discoveryv1.Endpoint
		port          discoveryv1.EndpointPort
	}{{
		name: "Serve with ready pods: the pods' queue-proxies",
		b:    Backends{Serve: true, Pods: pods, Activator: activator},
		eps:  podEndpoints, addrType: v4,
		port: discoveryv1.EndpointPort{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8012)},
	}, {
		name: "Proxy with ready pods: the activator stays in the path",
		b:    Backends{Pods: pods, Activator: activator}, wantActivator: true,
		eps: activatorEndpoints, addrType: v4,
		port: discoveryv1.EndpointPort{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8013)},
	}, {
		name: "Serve without a ready pod: the activator",
		b: Backends{Serve: true, Activator: activator,
			Pods: []discoveryv1.EndpointSlice{source("hello-00001-private", v4, 8012, endpoint("10.0.0.5", false))}},
		wantActivator: true, eps: activatorEndpoints, addrType: v4,
		port: discoveryv1.EndpointPort{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8013)},
	}, {
		name: "at zero and no activator ready: no endpoint",
		b:    Backends{}, wantActivator: true,
		eps: []discoveryv1.Endpoint{}, addrType: v4,
		port: discoveryv1.EndpointPort{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8012)},
	}, {
		name: "h2c: the queue-proxies' h2c port 8013, named http2 with the h2c application protocol",
		b:    Backends{Serve: true, H2C: true, Pods: pods},
		eps:  podEndpoints, addrType: v4,
		port: discoveryv1.EndpointPort{Name: ptr.To("http2"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8013), AppProtocol: ptr.To("kubernetes.io/h2c")},
	}, {
		name:          "h2c at zero: the activator on its own port, which takes h2c",
		b:             Backends{H2C: true, Activator: []discoveryv1.EndpointSlice{source("gantry-activator", v4, 8012, endpoint("10.0.1.1", true))}},
		wantActivator: true, eps: activatorEndpoints, addrType: v4,
		port: discoveryv1.EndpointPort{Name: ptr.To("http2"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8012), AppProtocol: ptr.To("kubernetes.io/h2c")},
	}, {
		name: "IPv6 only: an IPv6 slice",
		b:    Backends{Serve: true, Pods: []discoveryv1.EndpointSlice{source("hello-00001-private", v6, 8012, endpoint("fd00::2", true))}},
		eps:  []discoveryv1.Endpoint{wantEndpoint("fd00::2")}, addrType: v6,
		port: discoveryv1.EndpointPort{Name: ptr.To("http"), Protocol: ptr.To(corev1.ProtocolTCP), Port: ptr.To[int32](8012)},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, toActivator := MakeBackendEndpointSlice(testRevision(), tc.b)
			labels := map[string]string{
				"kubernetes.io/service-name":             "hello-00001",
				"endpointslice.kubernetes.io/managed-by": "gateway-api.gantry.dev",
			}
			for k, v := range wantLabels {
				labels[k] = v
			}
			want := &discoveryv1.EndpointSlice{
				ObjectMeta:  metav1.ObjectMeta{Name: "hello-00001", Namespace: "default", Labels: labels, OwnerReferences: wantOwner},
				AddressType: tc.addrType,
				Endpoints:   tc.eps,
				Ports:       []discoveryv1.EndpointPort{tc.port},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("EndpointSlice (-want +got):\n%s", diff)
			}
			if toActivator != tc.wantActivator {
				t.Errorf("to the activator: %v, want %v", toActivator, tc.wantActivator)
			}
		})
	}
}
