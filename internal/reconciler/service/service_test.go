package service

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/gantry-run/gantry/internal/reconciler/reconcilertest"
	"github.com/gantry-run/gantry/internal/reconciler/service/resources"
	"github.com/gantry-run/gantry/pkg/apis"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

const ns = "ns"

var key = client.ObjectKey{Namespace: ns, Name: "hello"}

func service() *servingv1.Service {
	return &servingv1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: ns, UID: "svc-uid", Generation: 1},
		Spec: servingv1.ServiceSpec{
			ConfigurationSpec: servingv1.ConfigurationSpec{Template: servingv1.RevisionTemplateSpec{
				Spec: servingv1.RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: "registry/hello"}}}},
			}},
			RouteSpec: servingv1.RouteSpec{Traffic: []servingv1.TrafficTarget{{LatestRevision: ptr.To(true), Percent: ptr.To[int64](100)}}},
		},
	}
}

// readyChildren are the Service's Configuration and Route as their reconcilers leave them
// once the first revision serves.
func readyChildren() []client.Object {
	cfg := resources.MakeConfiguration(service())
	cfg.Status.InitializeConditions()
	cfg.Status.SetLatestCreatedRevisionName("hello-00001")
	cfg.Status.SetLatestReadyRevisionName("hello-00001")
	route := resources.MakeRoute(service())
	route.Status.InitializeConditions()
	route.Status.MarkTrafficAssigned()
	route.Status.MarkIngressReady()
	route.Status.URL = &apis.URL{Scheme: "http", Host: "hello.ns.example.com"}
	return []client.Object{cfg, route}
}

var errUnreadable = errors.New("etcdserver: request timed out")

func TestReconcile(t *testing.T) {
	foreignCfg := resources.MakeConfiguration(service())
	foreignCfg.OwnerReferences = nil
	tests := []struct {
		name    string
		objs    []client.Object
		funcs   interceptor.Funcs
		wantErr error
		// What the stored Service says after Reconcile, and whether each child now is the
		// Service's.
		wantConds           map[apis.ConditionType]apis.Condition
		wantURL             string
		wantCfgOwned        bool
		wantRouteOwned      bool
		wantEvents          []string
		wantLatestCreated   string
		wantNoConfiguration bool
	}{{
		name: "creates the configuration and the route",
		objs: []client.Object{service()},
		wantConds: map[apis.ConditionType]apis.Condition{
			servingv1.ServiceConditionReady: {Type: servingv1.ServiceConditionReady, Status: corev1.ConditionUnknown},
		},
		wantCfgOwned:   true,
		wantRouteOwned: true,
		wantEvents:     []string{`Normal Created Created Configuration "hello"`, `Normal Created Created Route "hello"`},
	}, {
		name: "mirrors ready children",
		objs: append([]client.Object{service()}, readyChildren()...),
		wantConds: map[apis.ConditionType]apis.Condition{
			servingv1.ServiceConditionReady: {Type: servingv1.ServiceConditionReady, Status: corev1.ConditionTrue},
		},
		wantURL:           "http://hello.ns.example.com",
		wantLatestCreated: "hello-00001",
		wantCfgOwned:      true,
		wantRouteOwned:    true,
		wantEvents:        []string{"Normal Ready Service is ready"},
	}, {
		name:    "a configuration of the same name owned by another object",
		objs:    []client.Object{service(), foreignCfg},
		wantErr: errAny,
		wantConds: map[apis.ConditionType]apis.Condition{
			servingv1.ServiceConditionConfigurationsReady: {Type: servingv1.ServiceConditionConfigurationsReady, Status: corev1.ConditionFalse,
				Reason: "NotOwned", Message: `There is an existing Configuration "hello" that we do not own.`},
			servingv1.ServiceConditionReady: {Type: servingv1.ServiceConditionReady, Status: corev1.ConditionFalse,
				Reason: "NotOwned", Message: `There is an existing Configuration "hello" that we do not own.`},
		},
		wantRouteOwned: true,
		wantEvents:     []string{`Normal Created Created Route "hello"`, `Warning NotOwned There is an existing Configuration "hello" that we do not own.`},
	}, {
		name: "a configuration that cannot be read is not created",
		objs: []client.Object{service()},
		funcs: interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*servingv1.Configuration); ok {
				return errUnreadable
			}
			return c.Get(ctx, key, obj, opts...)
		}},
		wantErr: errUnreadable,
		wantConds: map[apis.ConditionType]apis.Condition{
			servingv1.ServiceConditionConfigurationsReady: {Type: servingv1.ServiceConditionConfigurationsReady, Status: corev1.ConditionUnknown,
				Reason: servingv1.ReasonOutOfDate, Message: "The Configuration is still working to reflect the latest desired specification."},
		},
		wantRouteOwned:      true,
		wantNoConfiguration: true,
		wantEvents: []string{
			`Warning InternalError Failed to reconcile Configuration "hello": reading *v1.Configuration ns/hello: etcdserver: request timed out`,
			`Normal Created Created Route "hello"`,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The reconciler sees the world through tt.funcs; the test reads it as it is.
			c := reconcilertest.NewClient().WithObjects(tt.objs...).Build()
			rec := reconcilertest.NewRecorder()
			r := &Reconciler{Client: interceptor.NewClient(c, tt.funcs), Recorder: rec}
			_, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key})
			if !matches(err, tt.wantErr) {
				t.Fatalf("Reconcile() = %v, want %v", err, tt.wantErr)
			}
			ctx := context.Background()
			got := &servingv1.Service{}
			if err := c.Get(ctx, key, got); err != nil {
				t.Fatal(err)
			}
			for typ, want := range tt.wantConds {
				if diff := cmp.Diff(&want, got.Status.GetCondition(typ), ignoreTimeAndSeverity); diff != "" {
					t.Errorf("%s (-want +got):\n%s", typ, diff)
				}
			}
			if got.Status.URL.String() != tt.wantURL || got.Status.LatestCreatedRevisionName != tt.wantLatestCreated {
				t.Errorf("url, latest created = %s, %q; want %s, %q", got.Status.URL, got.Status.LatestCreatedRevisionName, tt.wantURL, tt.wantLatestCreated)
			}
			cfg := &servingv1.Configuration{}
			cfgErr := c.Get(ctx, key, cfg)
			if tt.wantNoConfiguration != apierrors.IsNotFound(cfgErr) {
				t.Errorf("reading the configuration: %v, want it missing = %v", cfgErr, tt.wantNoConfiguration)
			}
			if owned := cfgErr == nil && metav1.IsControlledBy(cfg, got); owned != tt.wantCfgOwned {
				t.Errorf("configuration owned = %v, want %v", owned, tt.wantCfgOwned)
			}
			route := &servingv1.Route{}
			if err := c.Get(ctx, key, route); err != nil || !metav1.IsControlledBy(route, got) != !tt.wantRouteOwned {
				t.Errorf("route: %v, owned = %v, want %v", err, err == nil && metav1.IsControlledBy(route, got), tt.wantRouteOwned)
			}
			if diff := cmp.Diff(tt.wantEvents, reconcilertest.Events(rec)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// errAny stands for an error whatever it wraps.
var errAny = errors.New("any error")

func matches(err, want error) bool {
	if errors.Is(want, errAny) {
		return err != nil
	}
	return errors.Is(err, want)
}

var ignoreTimeAndSeverity = cmp.FilterPath(func(p cmp.Path) bool {
	f := p.Last().String()
	return f == ".LastTransitionTime" || f == ".Severity"
}, cmp.Ignore())
