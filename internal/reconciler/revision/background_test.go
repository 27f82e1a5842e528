package revision

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/reconciler/reconcilertest"
	"github.com/gantry-run/gantry/internal/reconciler/revision/resources"
	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

var errManifestUnknown = errors.New("MANIFEST_UNKNOWN: manifest unknown")

// fakeResolver answers from digests; an image it does not know is unknown to the registry.
// An image in slow waits for the resolution's deadline. It counts the questions it was asked.
type fakeResolver struct {
	digests map[string]string
	slow    map[string]bool

	mu    sync.Mutex
	asked map[string]int
}

func (f *fakeResolver) Resolve(ctx context.Context, image string) (string, error) {
	f.mu.Lock()
	if f.asked == nil {
		f.asked = map[string]int{}
	}
	f.asked[image]++
	f.mu.Unlock()
	if f.slow[image] {
		<-ctx.Done()
		return "", ctx.Err()
	}
	if d, ok := f.digests[image]; ok {
		return d, nil
	}
	return "", errManifestUnknown
}

func (f *fakeResolver) askedFor(image string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked[image]
}

// startResolver runs a resolver over f until the test ends; the revisions it enqueues arrive
// on the returned channel.
func startResolver(t *testing.T, f Resolver, clk *clocktesting.FakePassiveClock, queueLength int) (*digestResolver, <-chan types.NamespacedName) {
	t.Helper()
	woken := make(chan types.NamespacedName, 16)
	d := newDigestResolver(f, clk, 2, queueLength, func(_ context.Context, key types.NamespacedName) { woken <- key })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.Start(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return d, woken
}

func wait(t *testing.T, woken <-chan types.NamespacedName) types.NamespacedName {
	t.Helper()
	select {
	case k := <-woken:
		return k
	case <-time.After(10 * time.Second):
		t.Fatal("the resolver never woke the revision")
		return types.NamespacedName{}
	}
}

func withImages(images ...string) func(*servingv1.Revision) {
	return func(rev *servingv1.Revision) {
		rev.Status.ContainerStatuses = nil
		rev.Spec.Containers = nil
		for i, image := range images {
			rev.Spec.Containers = append(rev.Spec.Containers, corev1.Container{Name: []string{"user-container", "sidecar", "third"}[i], Image: image})
		}
	}
}

var skip = config.NewDeployment().RegistriesSkippingTagResolving

func TestDigestResolver(t *testing.T) {
	f := &fakeResolver{digests: map[string]string{
		"registry.example/hello:latest": "registry.example/hello@sha256:aaa",
		"registry.example/side:1":       "registry.example/side@sha256:bbb",
	}}
	revKey := types.NamespacedName{Namespace: ns, Name: "hello-00001"}

	t.Run("digests and skipped registries need no registry", func(t *testing.T) {
		d, _ := startResolver(t, f, clocktesting.NewFakePassiveClock(time.Now()), 8)
		rev := revision(withImages("registry.example/x@sha256:ccc", "ko.local/app:dev"))
		got, err := d.Resolve(rev, skip, time.Second)
		want := []servingv1.ContainerStatus{{Name: "user-container", ImageDigest: "registry.example/x@sha256:ccc"}, {Name: "sidecar", ImageDigest: ""}}
		if err != nil || !cmp.Equal(want, got) {
			t.Errorf("Resolve() = %v, %v; want %v at once", got, err, want)
		}
	})

	t.Run("tags resolve in the background, then wake the revision", func(t *testing.T) {
		d, woken := startResolver(t, f, clocktesting.NewFakePassiveClock(time.Now()), 8)
		rev := revision(withImages("registry.example/hello:latest", "registry.example/side:1", "registry.example/hello:latest"))
		if got, err := d.Resolve(rev, skip, time.Second); got != nil || err != nil {
			t.Fatalf("first Resolve() = %v, %v; want nothing yet", got, err)
		}
		if k := wait(t, woken); k != revKey {
			t.Errorf("woke %v, want %v", k, revKey)
		}
		got, err := d.Resolve(rev, skip, time.Second)
		want := []servingv1.ContainerStatus{
			{Name: "user-container", ImageDigest: "registry.example/hello@sha256:aaa"},
			{Name: "sidecar", ImageDigest: "registry.example/side@sha256:bbb"},
			{Name: "third", ImageDigest: "registry.example/hello@sha256:aaa"},
		}
		if err != nil || !cmp.Equal(want, got) {
			t.Errorf("Resolve() after waking = %v, %v; want %v", got, err, want)
		}
		if n := f.askedFor("registry.example/hello:latest"); n != 1 {
			t.Errorf("asked the registry %d times for an image two containers share, want once", n)
		}
		if len(d.results) != 0 {
			t.Errorf("results kept after they were handed out: %v", d.results)
		}
	})

	t.Run("a failure backs off before the next try", func(t *testing.T) {
		clk := clocktesting.NewFakePassiveClock(time.Now())
		d, woken := startResolver(t, f, clk, 8)
		rev := revision(withImages("registry.example/gone:1"))
		for i, wantDelay := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
			if got, err := d.Resolve(rev, skip, time.Second); got != nil || err != nil {
				t.Fatalf("try %d: Resolve() = %v, %v; want a resolution under way", i, got, err)
			}
			wait(t, woken)
			_, err := d.Resolve(rev, skip, time.Second)
			var rerr *resolveError
			if !errors.As(err, &rerr) || !errors.Is(err, errManifestUnknown) || rerr.retryAfter != wantDelay {
				t.Fatalf("try %d: Resolve() = %v, want the registry's error, retry after %v", i, err, wantDelay)
			}
			clk.SetTime(clk.Now().Add(wantDelay / 2))
			if _, err := d.Resolve(rev, skip, time.Second); !errors.As(err, &rerr) || rerr.retryAfter != wantDelay/2 {
				t.Fatalf("try %d: Resolve() before the delay = %v, want the same error, retry after %v", i, err, wantDelay/2)
			}
			clk.SetTime(clk.Now().Add(wantDelay / 2))
		}
		if n := f.askedFor("registry.example/gone:1"); n != 3 {
			t.Errorf("asked the registry %d times, want 3", n)
		}
	})

	t.Run("each resolution has its own deadline", func(t *testing.T) {
		slow := &fakeResolver{slow: map[string]bool{"slow.example/app:1": true}}
		d, woken := startResolver(t, slow, clocktesting.NewFakePassiveClock(time.Now()), 8)
		rev := revision(withImages("slow.example/app:1"))
		if _, err := d.Resolve(rev, skip, 10*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		wait(t, woken)
		if _, err := d.Resolve(rev, skip, 10*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Resolve() = %v, want the deadline exceeded", err)
		}
	})

	t.Run("a full queue starts nothing", func(t *testing.T) {
		// No workers run: the queue only fills.
		d := newDigestResolver(f, clocktesting.NewFakePassiveClock(time.Now()), 0, 1, func(context.Context, types.NamespacedName) {})
		rev := revision(withImages("registry.example/hello:latest", "registry.example/side:1"))
		if _, err := d.Resolve(rev, skip, time.Second); !errors.Is(err, errResolverBusy) {
			t.Fatalf("Resolve() = %v, want %v", err, errResolverBusy)
		}
		if len(d.queue) != 0 || len(d.results) != 0 {
			t.Errorf("queue %d, results %v; want nothing started", len(d.queue), d.results)
		}
	})

	t.Run("a forgotten revision is not woken", func(t *testing.T) {
		d := newDigestResolver(f, clocktesting.NewFakePassiveClock(time.Now()), 0, 8, func(context.Context, types.NamespacedName) {
			t.Error("woke a forgotten revision")
		})
		rev := revision(withImages("registry.example/hello:latest"))
		if _, err := d.Resolve(rev, skip, time.Second); err != nil {
			t.Fatal(err)
		}
		d.Forget(revKey)
		d.process(context.Background(), <-d.queue)
		if len(d.results) != 0 {
			t.Errorf("results = %v, want none", d.results)
		}
	})

	t.Run("a revision created again under the same name starts afresh", func(t *testing.T) {
		d, woken := startResolver(t, f, clocktesting.NewFakePassiveClock(time.Now()), 8)
		old := revision(withImages("registry.example/side:1"))
		if _, err := d.Resolve(old, skip, time.Second); err != nil {
			t.Fatal(err)
		}
		wait(t, woken)
		again := revision(withImages("registry.example/hello:latest"), func(r *servingv1.Revision) { r.UID = "new-uid" })
		if got, err := d.Resolve(again, skip, time.Second); got != nil || err != nil {
			t.Fatalf("Resolve() of the new revision = %v, %v; want a resolution of its own under way", got, err)
		}
		wait(t, woken)
		got, err := d.Resolve(again, skip, time.Second)
		if want := []servingv1.ContainerStatus{{Name: "user-container", ImageDigest: "registry.example/hello@sha256:aaa"}}; err != nil || !cmp.Equal(want, got) {
			t.Errorf("Resolve() = %v, %v; want %v", got, err, want)
		}
	})
}

func TestRetryDelay(t *testing.T) {
	for failures, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 5: 16 * time.Second, 10: 512 * time.Second, 11: 1000 * time.Second, 60: 1000 * time.Second} {
		if got := retryDelay(failures); got != want {
			t.Errorf("retryDelay(%d) = %v, want %v", failures, got, want)
		}
	}
}

// TestReconcileResolvesInTheBackground: the first reconcile of a new revision starts the
// resolution and returns; the resolver wakes the revision, and the next reconcile runs it
// with its digest.
func TestReconcileResolvesInTheBackground(t *testing.T) {
	f := &fakeResolver{digests: map[string]string{"registry.example/hello:latest": "registry.example/hello@sha256:aaa"}}
	d, woken := startResolver(t, f, clocktesting.NewFakePassiveClock(time.Now()), 8)
	c := reconcilertest.NewClient().WithObjects(revision(withImages("registry.example/hello:latest"))).Build()
	r := &Reconciler{Client: c, Recorder: reconcilertest.NewRecorder(), digests: d}
	ctx := context.Background()

	if res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil || res != (ctrl.Result{}) {
		t.Fatalf("first Reconcile() = %+v, %v; want to wait for the resolver", res, err)
	}
	rev := &servingv1.Revision{}
	if err := c.Get(ctx, key, rev); err != nil {
		t.Fatal(err)
	}
	if ra := rev.Status.GetCondition(servingv1.RevisionConditionResourcesAvailable); !ra.IsUnknown() || ra.Reason != servingv1.ReasonResolvingDigests {
		t.Errorf("ResourcesAvailable = %+v, want Unknown %s", ra, servingv1.ReasonResolvingDigests)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "hello-00001-deployment"}, &appsv1.Deployment{}); err == nil {
		t.Error("a Deployment exists before the digest is known")
	}

	if k := wait(t, woken); k != key {
		t.Fatalf("woke %v, want %v", k, key)
	}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, key, rev); err != nil {
		t.Fatal(err)
	}
	want := []servingv1.ContainerStatus{{Name: "user-container", ImageDigest: "registry.example/hello@sha256:aaa"}}
	if diff := cmp.Diff(want, rev.Status.ContainerStatuses); diff != "" {
		t.Errorf("containerStatuses (-want +got):\n%s", diff)
	}
	deploy := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: resources.DeploymentName(rev)}, deploy); err != nil {
		t.Fatal(err)
	}
	if img := deploy.Spec.Template.Spec.Containers[0].Image; img != "registry.example/hello@sha256:aaa" {
		t.Errorf("the Deployment runs %s, want the digest", img)
	}
}

func TestReconcileAResolveFailure(t *testing.T) {
	tests := []struct {
		name      string
		image     string
		resolver  *fakeResolver
		cfg       func(*config.Deployment)
		wantMsg   string
		wantRetry time.Duration
	}{{
		name:      "an image the registry does not have",
		image:     "registry.example/gone:1",
		resolver:  &fakeResolver{},
		wantMsg:   `Unable to fetch image "registry.example/gone:1": failed to resolve image to digest: MANIFEST_UNKNOWN: manifest unknown`,
		wantRetry: time.Second,
	}, {
		name:      "a registry slower than config-deployment's digest-resolution-timeout",
		image:     "slow.example/app:1",
		resolver:  &fakeResolver{slow: map[string]bool{"slow.example/app:1": true}},
		cfg:       func(d *config.Deployment) { d.DigestResolutionTimeout = 10 * time.Millisecond },
		wantMsg:   `Unable to fetch image "slow.example/app:1": failed to resolve image to digest: context deadline exceeded`,
		wantRetry: time.Second,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clocktesting.NewFakePassiveClock(time.Now())
			d, woken := startResolver(t, tt.resolver, clk, 8)
			c := reconcilertest.NewClient().WithObjects(revision(withImages(tt.image))).Build()
			rec := reconcilertest.NewRecorder()
			cfg := config.NewConfig()
			if tt.cfg != nil {
				tt.cfg(cfg.Deployment)
			}
			r := &Reconciler{Client: c, Recorder: rec, Config: config.Static{Config: cfg}, digests: d}
			ctx := context.Background()
			if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
				t.Fatal(err)
			}
			wait(t, woken)
			res, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key})
			if err != nil || res.RequeueAfter != tt.wantRetry {
				t.Errorf("Reconcile() = %+v, %v; want a retry after %v", res, err, tt.wantRetry)
			}
			rev := &servingv1.Revision{}
			if err := c.Get(ctx, key, rev); err != nil {
				t.Fatal(err)
			}
			want := cond(healthy, fals, servingv1.ReasonContainerMissing, tt.wantMsg)
			if diff := cmp.Diff(&want, rev.Status.GetCondition(healthy), ignoreTimeAndSeverity); diff != "" {
				t.Errorf("ContainerHealthy (-want +got):\n%s", diff)
			}
			if !rev.Status.IsFailed() {
				t.Error("the revision is not failed")
			}
			// Reconciled again before the retry, nothing more is said.
			if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
				t.Fatal(err)
			}
			wantEvents := []string{"Warning ImageResolutionFailed " + tt.wantMsg, "Warning ContainerMissing " + tt.wantMsg}
			if diff := cmp.Diff(wantEvents, reconcilertest.Events(rec)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReconcileForgetsAGoneRevision(t *testing.T) {
	d := newDigestResolver(&fakeResolver{}, clocktesting.NewFakePassiveClock(time.Now()), 0, 8, func(context.Context, types.NamespacedName) {})
	c := reconcilertest.NewClient().WithObjects(revision(withImages("registry.example/hello:latest"))).Build()
	r := &Reconciler{Client: c, Recorder: reconcilertest.NewRecorder(), digests: d}
	ctx := context.Background()
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatal(err)
	}
	if len(d.results) != 1 {
		t.Fatalf("results = %v, want the revision's resolution under way", d.results)
	}
	if err := c.Delete(ctx, revision()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatal(err)
	}
	if len(d.results) != 0 {
		t.Errorf("results = %v, want the deleted revision's forgotten", d.results)
	}
}
