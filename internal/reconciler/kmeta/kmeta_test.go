package kmeta_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/gantry-run/gantry/internal/reconciler/kmeta"
	"github.com/gantry-run/gantry/internal/reconciler/reconcilertest"
	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

const ns = "ns"

var errUnreadable = errors.New("etcdserver: request timed out")

func owner() *servingv1.Revision {
	return &servingv1.Revision{ObjectMeta: metav1.ObjectMeta{Name: "hello-00001", Namespace: ns, UID: "rev-uid"}}
}

// child is the ConfigMap owner wants, holding data.
func child(data string) *corev1.ConfigMap {
	o := owner()
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "hello-00001-child", Namespace: ns,
			OwnerReferences: []metav1.OwnerReference{kmeta.OwnerRef(o, o.GetGroupVersionKind())}},
		Data: map[string]string{"k": data},
	}
}

func sameData(cur, want *corev1.ConfigMap) bool { return cur.Data["k"] == want.Data["k"] }
func applyData(cur, want *corev1.ConfigMap)     { cur.Data = want.Data }

func TestReconcileChild(t *testing.T) {
	foreign := child("theirs")
	foreign.OwnerReferences = nil
	tests := []struct {
		name        string
		existing    *corev1.ConfigMap
		funcs       interceptor.Funcs
		wantCreated bool
		wantErr     error
		wantData    string // the stored child's data afterwards; "" for none
		wantOwned   bool
	}{
		{name: "missing: created", wantCreated: true, wantData: "want", wantOwned: true},
		{name: "the same: left alone", existing: child("want"), wantData: "want", wantOwned: true},
		{name: "different: updated", existing: child("old"), wantData: "want", wantOwned: true},
		{name: "another's: refused and left alone", existing: foreign, wantErr: kmeta.ErrNotOwned, wantData: "theirs"},
		{
			name: "unreadable: an error, not a create",
			funcs: interceptor.Funcs{Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
				return errUnreadable
			}},
			wantErr: errUnreadable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := reconcilertest.NewClient()
			if tt.existing != nil {
				b = b.WithObjects(tt.existing)
			}
			c := b.Build()
			ctx := context.Background()
			want, cur := child("want"), &corev1.ConfigMap{}
			created, err := kmeta.ReconcileChild(ctx, interceptor.NewClient(c, tt.funcs), owner(), want, cur, sameData, applyData)
			if created != tt.wantCreated || !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReconcileChild() = %v, %v; want %v, %v", created, err, tt.wantCreated, tt.wantErr)
			}
			got := &corev1.ConfigMap{}
			err = c.Get(ctx, client.ObjectKeyFromObject(want), got)
			if tt.wantData == "" {
				if !apierrors.IsNotFound(err) {
					t.Fatalf("child: %v, want none", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Data["k"] != tt.wantData || metav1.IsControlledBy(got, owner()) != tt.wantOwned {
				t.Errorf("child holds %q, owned = %v; want %q, %v", got.Data["k"], metav1.IsControlledBy(got, owner()), tt.wantData, tt.wantOwned)
			}
		})
	}
}

func TestConverge(t *testing.T) {
	errBody := errors.New("body failed")
	errWrite := errors.New("status write refused")
	deleting := owner()
	deleting.DeletionTimestamp = ptr.To(metav1.Now())
	deleting.Finalizers = []string{"test/keep"}
	tests := []struct {
		name     string
		existing *servingv1.Revision
		funcs    interceptor.Funcs
		body     func(*servingv1.Revision) error
		// wantRan: body ran; wantWritten: the stored status changed; wantUpdated: onUpdate ran.
		wantRan, wantWritten, wantUpdated bool
		wantErr                           []error
	}{
		{name: "gone: nothing to do"},
		{name: "being deleted: left alone", existing: deleting},
		{
			name: "unreadable: an error, body not run", existing: owner(),
			funcs: interceptor.Funcs{Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
				return errUnreadable
			}},
			wantErr: []error{errUnreadable},
		},
		{name: "unchanged status: not written", existing: owner(), body: func(*servingv1.Revision) error { return nil }, wantRan: true},
		{name: "changed status: written", existing: owner(), body: markReady, wantRan: true, wantWritten: true, wantUpdated: true},
		{
			name: "a failing body: status written, error returned", existing: owner(),
			body:    func(rev *servingv1.Revision) error { _ = markReady(rev); return errBody },
			wantRan: true, wantWritten: true, wantUpdated: true, wantErr: []error{errBody},
		},
		{
			name: "a refused status write: both errors returned", existing: owner(),
			funcs: interceptor.Funcs{SubResourceUpdate: func(context.Context, client.Client, string, client.Object, ...client.SubResourceUpdateOption) error {
				return errWrite
			}},
			body:    func(rev *servingv1.Revision) error { _ = markReady(rev); return errBody },
			wantRan: true, wantErr: []error{errBody, errWrite},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := reconcilertest.NewClient()
			if tt.existing != nil {
				b = b.WithObjects(tt.existing)
			}
			c := b.Build()
			ctx := context.Background()
			ran, updated := false, false
			var before *servingv1.RevisionStatus
			err := kmeta.Converge(ctx, interceptor.NewClient(c, tt.funcs), client.ObjectKeyFromObject(owner()), &servingv1.Revision{},
				func(rev *servingv1.Revision) *servingv1.RevisionStatus { return &rev.Status },
				func(_ context.Context, rev *servingv1.Revision) error {
					ran = true
					if tt.body == nil {
						return nil
					}
					return tt.body(rev)
				},
				func(b *servingv1.RevisionStatus) { updated, before = true, b })
			for _, want := range tt.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("Converge() = %v, want it to wrap %v", err, want)
				}
			}
			if len(tt.wantErr) == 0 && err != nil {
				t.Errorf("Converge() = %v, want nil", err)
			}
			if ran != tt.wantRan || updated != tt.wantUpdated {
				t.Errorf("body ran = %v, onUpdate ran = %v; want %v, %v", ran, updated, tt.wantRan, tt.wantUpdated)
			}
			if updated && len(before.Conditions) != 0 {
				t.Errorf("onUpdate saw %v, want the status as read (no conditions)", before.Conditions)
			}
			if tt.existing == nil {
				return
			}
			got := &servingv1.Revision{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(owner()), got); err != nil {
				t.Fatal(err)
			}
			if written := got.Status.IsReady(); written != tt.wantWritten {
				t.Errorf("stored status ready = %v, want %v", written, tt.wantWritten)
			}
		})
	}
}

func markReady(rev *servingv1.Revision) error {
	rev.Status.InitializeConditions()
	rev.Status.MarkResourcesAvailableTrue()
	rev.Status.MarkContainerHealthyTrue()
	return nil
}

func TestWithConfig(t *testing.T) {
	custom := config.NewConfig()
	custom.Network.DomainTemplate = "{{.Name}}.{{.Domain}}"
	for _, tt := range []struct {
		name string
		src  config.Source
		want string
	}{
		{"nil: the shipped defaults", nil, config.DefaultDomainTemplate},
		{"a source: what it gives", config.Static{Config: custom}, "{{.Name}}.{{.Domain}}"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := config.FromContextOrDefaults(kmeta.WithConfig(context.Background(), tt.src)).Network.DomainTemplate
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("domain-template (-want +got):\n%s", diff)
			}
		})
	}
}
