package resourcemetrics

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/pkg/apis/config"
)

// The Service the APIService names; pki.MetricsAPIHost is its name in DNS form, which the
// serving certificate covers.
const (
	ServiceName = "gantry-metrics"
	portName    = "https"
	managedBy   = "gantry-resource-metrics"
)

// Intervals of registration.keep.
const (
	retryInterval     = 5 * time.Second
	reconcileInterval = 5 * time.Minute
)

// objects are what route metrics.k8s.io/v1beta1 to this process.
type objects struct {
	service    *corev1.Service
	slice      *discoveryv1.EndpointSlice
	apiService *apiregistrationv1.APIService
}

// makeObjects builds them for a listener at ip:port whose certificate ca issued: a Service
// without a selector (its port 443 is what the APIService names), an EndpointSlice with the
// one address (the aggregator, with --enable-aggregator-routing, dials it directly), and the
// APIService.
func makeObjects(ip net.IP, port int32, ca []byte) objects {
	labels := map[string]string{"app.kubernetes.io/managed-by": "gantry", "app.kubernetes.io/name": ServiceName}
	addrType := discoveryv1.AddressTypeIPv4
	if ip.To4() == nil {
		addrType = discoveryv1.AddressTypeIPv6
	}
	sliceLabels := map[string]string{discoveryv1.LabelServiceName: ServiceName, discoveryv1.LabelManagedBy: managedBy}
	for k, v := range labels {
		sliceLabels[k] = v
	}
	return objects{
		service: &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: ServiceName, Namespace: config.Namespace, Labels: labels},
			Spec: corev1.ServiceSpec{
				Type:  corev1.ServiceTypeClusterIP,
				Ports: []corev1.ServicePort{{Name: portName, Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(port)}},
			},
		},
		slice: &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: ServiceName, Namespace: config.Namespace, Labels: sliceLabels},
			AddressType: addrType,
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip.String()}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To(portName), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
		},
		apiService: &apiregistrationv1.APIService{
			ObjectMeta: metav1.ObjectMeta{Name: groupVersion.Version + "." + groupVersion.Group, Labels: labels},
			Spec: apiregistrationv1.APIServiceSpec{
				Service:              &apiregistrationv1.ServiceReference{Namespace: config.Namespace, Name: ServiceName, Port: ptr.To[int32](443)},
				Group:                groupVersion.Group,
				Version:              groupVersion.Version,
				CABundle:             ca,
				GroupPriorityMinimum: 100,
				VersionPriority:      100,
			},
		},
	}
}

type registration struct {
	objects    objects
	aggregator aggregator.Interface
	log        *slog.Logger
}

// keep applies the objects until ctx ends: at once, again after a failure, and now and then
// in case someone removed them.
func (r *registration) keep(ctx context.Context, c kubernetes.Interface) {
	for {
		wait := reconcileInterval
		if err := r.apply(ctx, c); err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("registering the resource metrics API", "err", err)
			wait = retryInterval
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (r *registration) apply(ctx context.Context, c kubernetes.Interface) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: config.Namespace}}
	if _, err := c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", config.Namespace, err)
	}
	want := r.objects
	services := c.CoreV1().Services(config.Namespace)
	if err := upsert(ctx, want.service, services.Get, services.Create, services.Update, func(cur, want *corev1.Service) bool {
		if equality.Semantic.DeepEqual(cur.Spec.Ports, want.Spec.Ports) && len(cur.Spec.Selector) == 0 {
			return false
		}
		cur.Spec.Ports, cur.Spec.Selector = want.Spec.Ports, nil
		return true
	}); err != nil {
		return fmt.Errorf("service %s: %w", ServiceName, err)
	}
	slices := c.DiscoveryV1().EndpointSlices(config.Namespace)
	if err := upsert(ctx, want.slice, slices.Get, slices.Create, slices.Update, func(cur, want *discoveryv1.EndpointSlice) bool {
		if equality.Semantic.DeepEqual(cur.Endpoints, want.Endpoints) && equality.Semantic.DeepEqual(cur.Ports, want.Ports) && cur.AddressType == want.AddressType {
			return false
		}
		if cur.AddressType != want.AddressType {
			return false // immutable: the caller sees the Update fail
		}
		cur.Endpoints, cur.Ports, cur.Labels = want.Endpoints, want.Ports, want.Labels
		return true
	}); err != nil {
		return fmt.Errorf("endpointslice %s: %w", ServiceName, err)
	}
	apiServices := r.aggregator.ApiregistrationV1().APIServices()
	if err := upsert(ctx, want.apiService, apiServices.Get, apiServices.Create, apiServices.Update, func(cur, want *apiregistrationv1.APIService) bool {
		if equality.Semantic.DeepEqual(cur.Spec, want.Spec) {
			return false
		}
		cur.Spec = want.Spec
		return true
	}); err != nil {
		return fmt.Errorf("apiservice %s: %w", want.apiService.Name, err)
	}
	return nil
}

// upsert creates want, or updates the existing object when fix changes it.
func upsert[T interface{ GetName() string }](ctx context.Context, want T,
	get func(context.Context, string, metav1.GetOptions) (T, error),
	create func(context.Context, T, metav1.CreateOptions) (T, error),
	update func(context.Context, T, metav1.UpdateOptions) (T, error),
	fix func(cur, want T) bool,
) error {
	cur, err := get(ctx, want.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = create(ctx, want, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	if !fix(cur, want) {
		return nil
	}
	_, err = update(ctx, cur, metav1.UpdateOptions{})
	return err
}
