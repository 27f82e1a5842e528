package configuration

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/gantry-run/gantry/internal/reconciler/configuration/resources"
	"github.com/gantry-run/gantry/internal/reconciler/reconcilertest"
	"github.com/gantry-run/gantry/pkg/apis"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

const ns = "ns"

var key = client.ObjectKey{Namespace: ns, Name: "hello"}

func configuration(gen int64, mutate ...func(*servingv1.ConfigurationStatus)) *servingv1.Configuration {
	cfg := &servingv1.Configuration{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: ns, UID: "cfg-uid", Generation: gen},
		Spec: servingv1.ConfigurationSpec{Template: servingv1.RevisionTemplateSpec{
			Spec: servingv1.RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: "registry/hello"}}}},
		}},
	}
	for _, m := range mutate {
		m(&cfg.Status)
	}
	return cfg
}

// revision is the Revision cfg stamps at its generation, as the revision reconciler has
// reported it: ready (true), failed (false) or still deploying (nil).
func revision(cfg *servingv1.Configuration, ready *bool) *servingv1.Revision {
	rev := resources.MakeRevision(cfg)
	rev.Generation = 1
	rev.Status.ObservedGeneration = 1
	rev.Status.InitializeConditions()
	switch {
	case ready == nil:
	case *ready:
		rev.Status.MarkResourcesAvailableTrue()
		rev.Status.MarkContainerHealthyTrue()
	default:
		rev.Status.MarkContainerExited(5, "Error")
	}
	return rev
}

func ptrTo(b bool) *bool { return &b }

var (
	errUnreadable = errors.New("etcdserver: request timed out")
	// errAny stands for an error whatever it wraps.
	errAny = errors.New("any error")
)

func failReadsOf(name string) interceptor.Funcs {
	return interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if _, ok := obj.(*servingv1.Revision); ok && key.Name == name {
			return errUnreadable
		}
		return c.Get(ctx, key, obj, opts...)
	}}
}

func TestReconcile(t *testing.T) {
	foreign := revision(configuration(1), nil)
	foreign.OwnerReferences = nil
	tests := []struct {
		name    string
		objs    []client.Object
		funcs   interceptor.Funcs
		wantErr error
		// The stored Configuration after Reconcile.
		wantCreated, wantReady string
		wantCond               apis.Condition
		wantEvents             []string
		wantRevision           bool
	}{{
		name:         "stamps the revision of a new generation",
		objs:         []client.Object{configuration(1)},
		wantCreated:  "hello-00001",
		wantCond:     apis.Condition{Type: servingv1.ConfigurationConditionReady, Status: corev1.ConditionUnknown},
		wantEvents:   []string{`Normal Created Created Revision "hello-00001"`},
		wantRevision: true,
	}, {
		name:         "a ready latest revision becomes the latest ready one",
		objs:         []client.Object{configuration(1), revision(configuration(1), ptrTo(true))},
		wantCreated:  "hello-00001",
		wantReady:    "hello-00001",
		wantCond:     apis.Condition{Type: servingv1.ConfigurationConditionReady, Status: corev1.ConditionTrue},
		wantEvents:   []string{`Normal LatestReadyUpdate LatestReadyRevisionName updated to "hello-00001"`},
		wantRevision: true,
	}, {
		name:         "a revision of the same name owned by another object",
		objs:         []client.Object{configuration(1), foreign},
		wantErr:      errAny,
		wantCond:     apis.Condition{Type: servingv1.ConfigurationConditionReady, Status: corev1.ConditionFalse, Reason: servingv1.ReasonRevisionCreationFailed, Message: `Revision creation failed with message: revision "hello-00001" already exists and is not owned by configuration "hello".`},
		wantRevision: true,
	}, {
		name:         "a revision that cannot be read is not created again",
		objs:         []client.Object{configuration(1)},
		funcs:        failReadsOf("hello-00001"),
		wantErr:      errUnreadable,
		wantCond:     apis.Condition{Type: servingv1.ConfigurationConditionReady, Status: corev1.ConditionUnknown},
		wantRevision: false,
	}, {
		name: "a revision the cache has not seen yet is no failure",
		objs: []client.Object{configuration(1)},
		funcs: interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			return apierrors.NewAlreadyExists(servingv1.Resource("revisions"), obj.GetName())
		}},
		wantErr:  errAny,
		wantCond: apis.Condition{Type: servingv1.ConfigurationConditionReady, Status: corev1.ConditionUnknown},
	}, {
		name: "a deleted latest ready revision no longer serves",
		objs: []client.Object{configuration(2, func(s *servingv1.ConfigurationStatus) {
			s.LatestCreatedRevisionName, s.LatestReadyRevisionName = "hello-00001", "hello-00001"
		}), revision(configuration(2), nil)},
		wantCreated:  "hello-00002",
		wantCond:     apis.Condition{Type: servingv1.ConfigurationConditionReady, Status: corev1.ConditionFalse, Reason: "RevisionDeleted", Message: `Revision "hello-00001" was deleted.`},
		wantRevision: true,
	}, {
		name: "a latest ready revision that cannot be read is not taken for deleted",
		objs: []client.Object{configuration(2, func(s *servingv1.ConfigurationStatus) {
			s.LatestCreatedRevisionName, s.LatestReadyRevisionName = "hello-00001", "hello-00001"
		}), revision(configuration(2), nil)},
		funcs:        failReadsOf("hello-00001"),
		wantErr:      errUnreadable,
		wantCreated:  "hello-00002",
		wantReady:    "hello-00001",
		wantCond:     apis.Condition{Type: servingv1.ConfigurationConditionReady, Status: corev1.ConditionUnknown},
		wantRevision: true,
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
			got := &servingv1.Configuration{}
			if err := c.Get(context.Background(), key, got); err != nil {
				t.Fatal(err)
			}
			if got.Status.LatestCreatedRevisionName != tt.wantCreated || got.Status.LatestReadyRevisionName != tt.wantReady {
				t.Errorf("latest created, ready = %q, %q; want %q, %q", got.Status.LatestCreatedRevisionName, got.Status.LatestReadyRevisionName, tt.wantCreated, tt.wantReady)
			}
			if diff := cmp.Diff(&tt.wantCond, got.Status.GetCondition(servingv1.ConfigurationConditionReady), ignoreTimeAndSeverity); diff != "" {
				t.Errorf("Ready (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantEvents, reconcilertest.Events(rec)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			name := resources.RevisionName(got)
			err = c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &servingv1.Revision{})
			if exists := err == nil; exists != tt.wantRevision {
				t.Errorf("revision %s exists = %v (%v), want %v", name, exists, err, tt.wantRevision)
			}
		})
	}
}

// TestLatestCreatedFailedOnce: a failed latest revision is told of by one event, however often
// the Configuration is reconciled afterwards.
func TestLatestCreatedFailedOnce(t *testing.T) {
	cfg := configuration(1)
	c := reconcilertest.NewClient().WithObjects(cfg, revision(cfg, ptrTo(false))).Build()
	rec := reconcilertest.NewRecorder()
	r := &Reconciler{Client: c, Recorder: rec}
	var got []string
	for range 3 {
		if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key}); err != nil {
			t.Fatal(err)
		}
		got = append(got, reconcilertest.Events(rec)...)
	}
	want := []string{`Warning LatestCreatedFailed Latest created revision "hello-00001" has failed: Container failed with: Error (exit code 5)`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events over three reconciles (-want +got):\n%s", diff)
	}
	stored := &servingv1.Configuration{}
	if err := c.Get(context.Background(), key, stored); err != nil {
		t.Fatal(err)
	}
	if ready := stored.Status.GetCondition(servingv1.ConfigurationConditionReady); !ready.IsFalse() || ready.Reason != servingv1.ReasonRevisionFailed {
		t.Errorf("Ready = %+v, want False %s", ready, servingv1.ReasonRevisionFailed)
	}
}

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
