package revision

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/gantry-run/gantry/internal/reconciler/reconcilertest"
	"github.com/gantry-run/gantry/internal/reconciler/revision/resources"
	"github.com/gantry-run/gantry/pkg/apis"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

const ns = "ns"

var key = client.ObjectKey{Namespace: ns, Name: "hello-00001"}

// revision is hello-00001 with its digest already resolved; mutate changes it further.
func revision(mutate ...func(*servingv1.Revision)) *servingv1.Revision {
	rev := &servingv1.Revision{
		ObjectMeta: metav1.ObjectMeta{
			Name: "hello-00001", Namespace: ns, UID: "rev-uid", Generation: 1,
			Labels: map[string]string{servingv1.ConfigurationLabelKey: "hello", servingv1.ServiceLabelKey: "hello"},
		},
		Spec: servingv1.RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "user-container", Image: "registry.example/hello:latest",
		}}}},
	}
	rev.Status.ContainerStatuses = []servingv1.ContainerStatus{{Name: "user-container", ImageDigest: "registry.example/hello@sha256:aaa"}}
	for _, m := range mutate {
		m(rev)
	}
	return rev
}

// established is a revision that has served: Ready, with ready pods.
func established(rev *servingv1.Revision) {
	rev.Status.ObservedGeneration = 1
	rev.Status.InitializeConditions()
	rev.Status.MarkResourcesAvailableTrue()
	rev.Status.MarkContainerHealthyTrue()
	rev.Status.MarkActiveTrue()
}

// deployment is the Deployment of rev scaled to replicas with ready of them ready; the
// Deployment controller's conditions follow (Available while ready pods meet the scale).
func deployment(rev *servingv1.Revision, replicas, ready int32, conds ...appsv1.DeploymentCondition) *appsv1.Deployment {
	d := resources.MakeDeployment(rev, config.NewConfig())
	d.Spec.Replicas = ptr.To(replicas)
	d.Status.Replicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas = replicas, ready, ready
	available := corev1.ConditionFalse
	if ready >= replicas {
		available = corev1.ConditionTrue
	}
	d.Status.Conditions = append([]appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: available}}, conds...)
	return d
}

// podAutoscaler is the PodAutoscaler of rev as the autoscaler left it: wanting desired pods,
// with actual ready, Active as mark sets it.
func podAutoscaler(rev *servingv1.Revision, desired, actual int32, mark func(*pav1alpha1.PodAutoscalerStatus)) *pav1alpha1.PodAutoscaler {
	pa := resources.MakePodAutoscaler(rev, "")
	pa.Status.InitializeConditions()
	pa.Status.DesiredScale, pa.Status.ActualScale = ptr.To(desired), ptr.To(actual)
	mark(&pa.Status)
	return pa
}

// The autoscaler's reports on a revision.
var (
	paActive = func(s *pav1alpha1.PodAutoscalerStatus) { s.MarkScaleTargetInitialized(); s.MarkActive() }
	paAtZero = func(s *pav1alpha1.PodAutoscalerStatus) {
		s.MarkScaleTargetInitialized()
		s.MarkInactive("NoTraffic", "The target is not receiving traffic.")
	}
	paQueued = func(s *pav1alpha1.PodAutoscalerStatus) {
		s.MarkScaleTargetInitialized()
		s.MarkActivating("Queued", "Requests to the target are being buffered as resources are provisioned.")
	}
)

const queuedMessage = "Requests to the target are being buffered as resources are provisioned."

var progressDeadlineExceeded = appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
	Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "hello-00001-deployment-abc" has timed out progressing.`}

// revisionPod is a pod of rev whose user container is in state.
func revisionPod(rev *servingv1.Revision, state corev1.ContainerState, last corev1.ContainerState) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hello-00001-deployment-abc-xyz", Namespace: ns, Labels: resources.PodLabels(rev)},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{
			{Name: "user-container", State: state, LastTerminationState: last},
		}},
	}
}

var (
	creating  = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	crashLoop = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
	exited5   = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 5, Reason: "Error"}}
	pullBack  = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "registry.example/hello@sha256:aaa"`}}
)

func cond(t apis.ConditionType, s corev1.ConditionStatus, reason, message string) apis.Condition {
	return apis.Condition{Type: t, Status: s, Reason: reason, Message: message}
}

const (
	ready     = servingv1.RevisionConditionReady
	resAvail  = servingv1.RevisionConditionResourcesAvailable
	healthy   = servingv1.RevisionConditionContainerHealthy
	active    = servingv1.RevisionConditionActive
	readyNote = "Normal RevisionReady Revision becomes ready upon all resources being ready"
)

var (
	tru, fals, unknown = corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionUnknown
	errUnreadable      = errors.New("etcdserver: request timed out")
	// errAny stands for an error whatever it wraps.
	errAny = errors.New("any error")
)

func TestReconcile(t *testing.T) {
	notOwned := deployment(revision(), 1, 0)
	notOwned.OwnerReferences = nil
	foreignService := resources.MakePrivateService(revision())
	foreignService.OwnerReferences = nil
	foreignPA := resources.MakePodAutoscaler(revision(), "")
	foreignPA.OwnerReferences = nil
	tests := []struct {
		name    string
		objs    []client.Object
		funcs   interceptor.Funcs
		wantErr error
		// The stored Revision's conditions (those named) and replica counts after Reconcile.
		wantConds            []apis.Condition
		wantActual, wantWant *int32
		wantEvents           []string
		// checkDeploy, when set, looks at the stored Deployment (err is the error reading it).
		checkDeploy func(*testing.T, *appsv1.Deployment, error)
		// checkPA, when set, looks at the stored PodAutoscaler.
		checkPA func(*testing.T, *pav1alpha1.PodAutoscaler, error)
	}{{
		name: "a new revision gets its deployment",
		objs: []client.Object{revision()},
		wantConds: []apis.Condition{
			cond(ready, unknown, servingv1.ReasonDeploying, ""),
			cond(resAvail, unknown, servingv1.ReasonDeploying, ""),
			cond(healthy, unknown, servingv1.ReasonDeploying, ""),
			cond(active, unknown, servingv1.ReasonDeploying, ""),
		},
		wantEvents: []string{`Normal Created Created Deployment "hello-00001-deployment"`},
		checkDeploy: func(t *testing.T, d *appsv1.Deployment, err error) {
			if err != nil || !metav1.IsControlledBy(d, revision()) || ptr.Deref(d.Spec.Replicas, -1) != 1 {
				t.Errorf("deployment: %v, want one the revision owns at the initial scale 1", err)
			}
		},
		checkPA: func(t *testing.T, pa *pav1alpha1.PodAutoscaler, err error) {
			if err != nil || !metav1.IsControlledBy(pa, revision()) {
				t.Fatalf("podautoscaler: %v, want one the revision owns", err)
			}
			if diff := cmp.Diff(resources.MakePodAutoscaler(revision(), "").Spec, pa.Spec); diff != "" {
				t.Errorf("podautoscaler spec (-want +got):\n%s", diff)
			}
		},
	}, {
		name: "ready pods make it ready; the autoscaler says active",
		objs: []client.Object{revision(), deployment(revision(), 1, 1), podAutoscaler(revision(), 1, 1, paActive)},
		wantConds: []apis.Condition{
			cond(ready, tru, "", ""), cond(resAvail, tru, "", ""), cond(healthy, tru, "", ""), cond(active, tru, "", ""),
		},
		wantActual: ptr.To[int32](1), wantWant: ptr.To[int32](1),
		wantEvents: []string{readyNote},
	}, {
		name: "scaled to zero it stays ready, inactive",
		objs: []client.Object{revision(established), deployment(revision(), 0, 0), podAutoscaler(revision(), 0, 0, paAtZero)},
		wantConds: []apis.Condition{
			cond(ready, tru, "", ""), cond(resAvail, tru, "", ""), cond(healthy, tru, "", ""),
			cond(active, fals, servingv1.ReasonNoTraffic, "The target is not receiving traffic."),
		},
		wantActual: ptr.To[int32](0), wantWant: ptr.To[int32](0),
	}, {
		name: "scaling up from zero it stays ready, activating",
		objs: []client.Object{revision(established), deployment(revision(), 1, 0), revisionPod(revision(), creating, corev1.ContainerState{}),
			podAutoscaler(revision(), 1, 0, paQueued)},
		wantConds: []apis.Condition{
			cond(ready, tru, "", ""), cond(resAvail, tru, "", ""), cond(healthy, tru, "", ""),
			cond(active, unknown, servingv1.ReasonActivating, queuedMessage),
		},
		wantActual: ptr.To[int32](0), wantWant: ptr.To[int32](1),
	}, {
		name: "created at zero (initial-scale 0) it is ready, inactive",
		objs: []client.Object{
			revision(func(r *servingv1.Revision) {
				r.Annotations = map[string]string{"autoscaling.knative.dev/initial-scale": "0"}
			}),
			deployment(revision(), 0, 0), podAutoscaler(revision(), 0, 0, paAtZero),
		},
		wantConds: []apis.Condition{
			cond(ready, tru, "", ""), cond(resAvail, tru, "", ""), cond(healthy, tru, "", ""),
			cond(active, fals, servingv1.ReasonNoTraffic, "The target is not receiving traffic."),
		},
		wantActual: ptr.To[int32](0), wantWant: ptr.To[int32](0),
		wantEvents: []string{readyNote},
	}, {
		name: "a container that exits while scaling from zero fails it",
		objs: []client.Object{revision(established), deployment(revision(), 1, 0), revisionPod(revision(), crashLoop, exited5),
			podAutoscaler(revision(), 1, 0, paQueued)},
		wantConds: []apis.Condition{
			cond(ready, fals, servingv1.ReasonExitCode, "Container failed with: Error; CrashLoopBackOff (exit code 5)"),
			cond(resAvail, tru, "", ""),
			cond(healthy, fals, servingv1.ReasonExitCode, "Container failed with: Error; CrashLoopBackOff (exit code 5)"),
			cond(active, unknown, servingv1.ReasonActivating, queuedMessage),
		},
		wantActual: ptr.To[int32](0), wantWant: ptr.To[int32](1),
		wantEvents: []string{"Warning ExitCode Container failed with: Error; CrashLoopBackOff (exit code 5)"},
	}, {
		name: "an image that cannot be pulled",
		objs: []client.Object{revision(), deployment(revision(), 1, 0), revisionPod(revision(), pullBack, corev1.ContainerState{})},
		wantConds: []apis.Condition{
			cond(ready, fals, "ImagePullBackOff", `Back-off pulling image "registry.example/hello@sha256:aaa"`),
			cond(resAvail, fals, "ImagePullBackOff", `Back-off pulling image "registry.example/hello@sha256:aaa"`),
			cond(active, unknown, servingv1.ReasonDeploying, ""),
		},
		wantEvents: []string{`Warning ImagePullBackOff Back-off pulling image "registry.example/hello@sha256:aaa"`},
	}, {
		name: "a rollout past its deadline fails even an established revision",
		objs: []client.Object{revision(established), deployment(revision(), 2, 1, progressDeadlineExceeded), podAutoscaler(revision(), 2, 1, paActive)},
		wantConds: []apis.Condition{
			cond(ready, fals, servingv1.ReasonProgressDeadline, progressDeadlineExceeded.Message),
			cond(resAvail, fals, servingv1.ReasonProgressDeadline, progressDeadlineExceeded.Message),
			cond(healthy, tru, "", ""),
			cond(active, tru, "", ""),
		},
		wantActual: ptr.To[int32](1), wantWant: ptr.To[int32](2),
		wantEvents: []string{"Warning ProgressDeadlineExceeded " + progressDeadlineExceeded.Message},
	}, {
		name:    "a deployment of the same name owned by another object",
		objs:    []client.Object{revision(), notOwned},
		wantErr: errAny,
		wantConds: []apis.Condition{
			cond(ready, fals, "NotOwned", `There is an existing Deployment "hello-00001-deployment" that we do not own.`),
			cond(resAvail, fals, "NotOwned", `There is an existing Deployment "hello-00001-deployment" that we do not own.`),
		},
		wantEvents: []string{`Warning NotOwned There is an existing Deployment "hello-00001-deployment" that we do not own.`},
		checkDeploy: func(t *testing.T, d *appsv1.Deployment, err error) {
			if err != nil || len(d.OwnerReferences) != 0 {
				t.Errorf("deployment: %v, owners %v; want it left to its owner", err, d.OwnerReferences)
			}
		},
	}, {
		name:    "a service of the same name owned by another object",
		objs:    []client.Object{revision(), deployment(revision(), 1, 1), foreignService},
		wantErr: errAny,
		wantConds: []apis.Condition{
			cond(ready, fals, "NotOwned", `There is an existing Service "hello-00001-private" that we do not own.`),
			cond(resAvail, fals, "NotOwned", `There is an existing Service "hello-00001-private" that we do not own.`),
		},
		wantEvents: []string{`Warning NotOwned There is an existing Service "hello-00001-private" that we do not own.`},
	}, {
		name:    "a podautoscaler of the same name owned by another object",
		objs:    []client.Object{revision(established), deployment(revision(), 1, 1), foreignPA},
		wantErr: errAny,
		wantConds: []apis.Condition{
			cond(ready, fals, "NotOwned", `There is an existing PodAutoscaler "hello-00001" that we do not own.`),
			cond(resAvail, fals, "NotOwned", `There is an existing PodAutoscaler "hello-00001" that we do not own.`),
		},
		wantEvents: []string{`Warning NotOwned There is an existing PodAutoscaler "hello-00001" that we do not own.`},
		checkPA: func(t *testing.T, pa *pav1alpha1.PodAutoscaler, err error) {
			if err != nil || len(pa.OwnerReferences) != 0 {
				t.Errorf("podautoscaler: %v, owners %v; want it left to its owner", err, pa.OwnerReferences)
			}
		},
	}, {
		name: "an established revision the autoscaler has not reported on: activating",
		objs: []client.Object{revision(established), deployment(revision(), 1, 1)},
		wantConds: []apis.Condition{
			cond(ready, tru, "", ""), cond(resAvail, tru, "", ""), cond(healthy, tru, "", ""),
			cond(active, unknown, servingv1.ReasonActivating, "Waiting for a pod to become ready."),
		},
	}, {
		name: "a deployment that cannot be read is not created",
		objs: []client.Object{revision()},
		funcs: interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*appsv1.Deployment); ok {
				return errUnreadable
			}
			return c.Get(ctx, key, obj, opts...)
		}},
		wantErr:    errUnreadable,
		wantEvents: []string{`Warning InternalError Failed to reconcile Deployment "hello-00001-deployment": reading *v1.Deployment ns/hello-00001-deployment: etcdserver: request timed out`},
		checkDeploy: func(t *testing.T, _ *appsv1.Deployment, err error) {
			if !apierrors.IsNotFound(err) {
				t.Errorf("deployment: %v, want none", err)
			}
		},
	}, {
		name: "a deployment update that meets another writer's is retried without a warning",
		objs: []client.Object{revision(established), func() *appsv1.Deployment {
			d := deployment(revision(), 1, 1)
			d.Spec.Template.Spec.Containers[0].Image = "stale"
			return d
		}()},
		funcs: interceptor.Funcs{Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if _, ok := obj.(*appsv1.Deployment); ok {
				return apierrors.NewConflict(appsv1.Resource("deployments"), obj.GetName(), errors.New("the object has been modified"))
			}
			return c.Update(ctx, obj, opts...)
		}},
		wantErr: errAny,
		checkDeploy: func(t *testing.T, d *appsv1.Deployment, err error) {
			if err != nil || d.Spec.Template.Spec.Containers[0].Image != "stale" {
				t.Errorf("deployment: %v, image %q; want it as it was", err, d.Spec.Template.Spec.Containers[0].Image)
			}
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
			got := &servingv1.Revision{}
			if err := c.Get(context.Background(), key, got); err != nil {
				t.Fatal(err)
			}
			for _, want := range tt.wantConds {
				if diff := cmp.Diff(&want, got.Status.GetCondition(want.Type), ignoreTimeAndSeverity); diff != "" {
					t.Errorf("%s (-want +got):\n%s", want.Type, diff)
				}
			}
			if diff := cmp.Diff([]*int32{tt.wantActual, tt.wantWant}, []*int32{got.Status.ActualReplicas, got.Status.DesiredReplicas}); diff != "" {
				t.Errorf("actual, desired replicas (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantEvents, reconcilertest.Events(rec)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if tt.checkDeploy != nil {
				d := &appsv1.Deployment{}
				err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "hello-00001-deployment"}, d)
				tt.checkDeploy(t, d, err)
			}
			if tt.checkPA != nil {
				pa := &pav1alpha1.PodAutoscaler{}
				err := c.Get(context.Background(), key, pa)
				tt.checkPA(t, pa, err)
			}
		})
	}
}

// TestReconcileFollowsTheConfiguration: a change of config-deployment reaches an existing
// Deployment, and the replica count the autoscaler chose survives it.
func TestReconcileFollowsTheConfiguration(t *testing.T) {
	scaled := deployment(revision(), 3, 3)
	c := reconcilertest.NewClient().WithObjects(revision(established), scaled).Build()
	cfg := config.NewConfig()
	cfg.Deployment.QueueSidecarImage = "registry.example/queue-proxy:v2"
	r := &Reconciler{Client: c, Recorder: reconcilertest.NewRecorder(), Config: config.Static{Config: cfg}}
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatal(err)
	}
	got := &appsv1.Deployment{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(scaled), got); err != nil {
		t.Fatal(err)
	}
	if ptr.Deref(got.Spec.Replicas, -1) != 3 {
		t.Errorf("replicas = %d, want the autoscaler's 3", ptr.Deref(got.Spec.Replicas, -1))
	}
	containers := got.Spec.Template.Spec.Containers
	if qp := containers[len(containers)-1]; qp.Image != "registry.example/queue-proxy:v2" {
		t.Errorf("queue-proxy image = %q, want config-deployment's", qp.Image)
	}
}

// TestReconcileFollowsTheRevisionsMetadata: a route's label and a changed setting on the
// revision reach its PodAutoscaler's spec and annotations; the autoscaler's status and the
// Deployment (its replicas, its pods) stay as they were.
func TestReconcileFollowsTheRevisionsMetadata(t *testing.T) {
	withWindow := func(r *servingv1.Revision) {
		r.Annotations = map[string]string{"autoscaling.knative.dev/window": "10s", "autoscaling.knative.dev/min-scale": "2"}
	}
	scaled := deployment(revision(withWindow), 3, 3)
	pa := podAutoscaler(revision(withWindow), 3, 3, paActive)
	rev := revision(established, withWindow, func(r *servingv1.Revision) {
		// The route no longer sends it traffic; the user dropped min-scale.
		r.Labels[servingv1.RoutingStateLabelKey] = servingv1.RoutingStateReserve
		r.Annotations = map[string]string{
			"autoscaling.knative.dev/window":            "10s",
			servingv1.RoutesAnnotationKey:               "",
			servingv1.RoutingStateModifiedAnnotationKey: "2026-11-28T10:00:00Z",
		}
	})
	c := reconcilertest.NewClient().WithObjects(rev, scaled, pa).Build()
	r := &Reconciler{Client: c, Recorder: reconcilertest.NewRecorder()}
	ctx := context.Background()
	before := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(scaled), before); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatal(err)
	}
	got := &pav1alpha1.PodAutoscaler{}
	if err := c.Get(ctx, key, got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.Reachability != pav1alpha1.ReachabilityUnreachable {
		t.Errorf("reachability = %q, want Unreachable for a revision in reserve", got.Spec.Reachability)
	}
	wantAnn := map[string]string{"autoscaling.knative.dev/window": "10s", "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev"}
	if diff := cmp.Diff(wantAnn, got.Annotations); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(pa.Status, got.Status); diff != "" {
		t.Errorf("the autoscaler's status changed (-before +after):\n%s", diff)
	}
	d := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(scaled), d); err != nil {
		t.Fatal(err)
	}
	if d.ResourceVersion != before.ResourceVersion || ptr.Deref(d.Spec.Replicas, -1) != 3 {
		t.Errorf("deployment: resourceVersion %s → %s, replicas %d; want it untouched at the autoscaler's 3",
			before.ResourceVersion, d.ResourceVersion, ptr.Deref(d.Spec.Replicas, -1))
	}
	rv := &servingv1.Revision{}
	if err := c.Get(ctx, key, rv); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(cond(active, tru, "", ""), *rv.Status.GetCondition(active), ignoreTimeAndSeverity); diff != "" {
		t.Errorf("Active (-want +got):\n%s", diff)
	}
}

// TestReconcileStartsAtTheConfiguredScale: config-autoscaler's initial-scale applies to a
// revision that does not say its own.
func TestReconcileStartsAtTheConfiguredScale(t *testing.T) {
	c := reconcilertest.NewClient().WithObjects(revision()).Build()
	cfg := config.NewConfig()
	cfg.Autoscaler.InitialScale, cfg.Autoscaler.AllowZeroInitialScale = 0, true
	r := &Reconciler{Client: c, Recorder: reconcilertest.NewRecorder(), Config: config.Static{Config: cfg}}
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatal(err)
	}
	got := &appsv1.Deployment{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "hello-00001-deployment"}, got); err != nil {
		t.Fatal(err)
	}
	if n := ptr.Deref(got.Spec.Replicas, -1); n != 0 {
		t.Errorf("replicas = %d, want config-autoscaler's initial-scale 0", n)
	}
}

func TestSameDeploymentIsPure(t *testing.T) {
	cur, want := deployment(revision(), 3, 3), deployment(revision(), 1, 0)
	wantBefore := want.DeepCopy()
	if !sameDeployment(cur, want) {
		t.Error("sameDeployment() = false for Deployments that differ only in replicas")
	}
	if diff := cmp.Diff(wantBefore, want); diff != "" {
		t.Errorf("sameDeployment changed want (-before +after):\n%s", diff)
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
