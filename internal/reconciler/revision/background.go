package revision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// A revision whose resolution failed tries again after a delay that doubles with each
// failure, as Knative's digest queue does: 1 s, 2 s, 4 s, … up to 1000 s.
const (
	resolveRetryBase = time.Second
	resolveRetryMax  = 1000 * time.Second
)

// errResolverBusy says the resolver's queue has no room for a revision's images: nothing was
// started, and the revision asks again later.
var errResolverBusy = errors.New("the digest resolver's queue is full")

// resolveError is the failed resolution of one image of a revision; the revision's
// resolution starts again after retryAfter.
type resolveError struct {
	image      string
	err        error
	retryAfter time.Duration
}

func (e *resolveError) Error() string { return fmt.Sprintf("resolving image %s: %v", e.image, e.err) }
func (e *resolveError) Unwrap() error { return e.err }

// digestResolver resolves Revisions' image tags to digests off the reconcile workers, as
// Knative's background resolver does, so that one slow registry stalls no other revision: a
// bounded queue feeds a fixed pool of workers, each resolution bounded by its own timeout;
// the result is kept per revision until the reconciler takes it, and enqueue wakes the
// revision when its last image is done.
type digestResolver struct {
	resolver Resolver
	enqueue  func(context.Context, types.NamespacedName)
	clock    clock.PassiveClock
	workers  int
	queue    chan resolveItem

	mu      sync.Mutex
	results map[types.NamespacedName]*resolveResult
}

// resolveResult is the resolution of one revision's images.
type resolveResult struct {
	uid     types.UID
	pending int               // images still being resolved
	digests map[string]string // image → digest reference; "" uses the image as it is
	// err is the failure that ended the resolution; it is retried from retryAt, and
	// failures counts the failed resolutions so far.
	err      *resolveError
	failures int
	retryAt  time.Time
}

func (r *resolveResult) done() bool { return r.pending == 0 || r.err != nil }

// resolveItem is one image of one revision's resolution.
type resolveItem struct {
	key     types.NamespacedName
	result  *resolveResult
	image   string
	timeout time.Duration
}

// newDigestResolver returns a resolver with workers workers and room for queueLength images
// waiting; Start runs it.
func newDigestResolver(r Resolver, clk clock.PassiveClock, workers, queueLength int, enqueue func(context.Context, types.NamespacedName)) *digestResolver {
	return &digestResolver{
		resolver: r,
		enqueue:  enqueue,
		clock:    clk,
		workers:  workers,
		queue:    make(chan resolveItem, queueLength),
		results:  map[types.NamespacedName]*resolveResult{},
	}
}

// Start runs the workers until ctx ends.
func (d *digestResolver) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for range d.workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case it := <-d.queue:
					d.process(ctx, it)
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// Resolve returns rev's container statuses, each with its image's digest, once every image is
// resolved. Images already named by digest, and those of registries in skip, need no
// registry and are known at once. Otherwise the first call queues the images and returns
// nothing: resolution is under way, and rev is enqueued when it ends. errResolverBusy means
// the queue had no room; a *resolveError means an image could not be resolved, and says when
// the next call starts again. A resolution that succeeded is handed out once.
func (d *digestResolver) Resolve(rev *servingv1.Revision, skip []string, timeout time.Duration) ([]servingv1.ContainerStatus, error) {
	key := types.NamespacedName{Namespace: rev.Namespace, Name: rev.Name}
	d.mu.Lock()
	defer d.mu.Unlock()
	res := d.results[key]
	if res != nil && res.uid != rev.UID {
		// A revision deleted and created again under the same name: start afresh.
		delete(d.results, key)
		res = nil
	}
	switch {
	case res == nil:
		return d.start(key, rev, skip, timeout, 0)
	case res.err != nil:
		if wait := res.retryAt.Sub(d.clock.Now()); wait > 0 {
			e := *res.err
			e.retryAfter = wait
			return nil, &e
		}
		return d.start(key, rev, skip, timeout, res.failures)
	case res.pending > 0:
		return nil, nil
	}
	delete(d.results, key)
	return containerStatuses(rev, res.digests), nil
}

// start begins the resolution of rev's images; failures is how many failed before. It is
// called with mu held.
func (d *digestResolver) start(key types.NamespacedName, rev *servingv1.Revision, skip []string, timeout time.Duration, failures int) ([]servingv1.ContainerStatus, error) {
	digests := map[string]string{}
	var images []string
	for _, c := range rev.Spec.Containers {
		switch {
		case strings.Contains(c.Image, "@sha256:"):
			digests[c.Image] = c.Image
		case skipsResolution(c.Image, skip):
			digests[c.Image] = ""
		case !slices.Contains(images, c.Image):
			images = append(images, c.Image)
		}
	}
	if len(images) == 0 {
		delete(d.results, key)
		return containerStatuses(rev, digests), nil
	}
	// Only workers take from the queue, and only under mu is it added to: the room seen here
	// is there when the images are sent.
	if len(d.queue)+len(images) > cap(d.queue) {
		return nil, errResolverBusy
	}
	res := &resolveResult{uid: rev.UID, pending: len(images), digests: digests, failures: failures}
	d.results[key] = res
	for _, image := range images {
		d.queue <- resolveItem{key: key, result: res, image: image, timeout: timeout}
	}
	return nil, nil
}

func containerStatuses(rev *servingv1.Revision, digests map[string]string) []servingv1.ContainerStatus {
	statuses := make([]servingv1.ContainerStatus, 0, len(rev.Spec.Containers))
	for _, c := range rev.Spec.Containers {
		statuses = append(statuses, servingv1.ContainerStatus{Name: c.Name, ImageDigest: digests[c.Image]})
	}
	return statuses
}

// Forget drops what is known or under way for the revision key names: it is gone.
func (d *digestResolver) Forget(key types.NamespacedName) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.results, key)
}

// process resolves one image and, when that ends the revision's resolution, enqueues the
// revision. An item of a resolution that was forgotten, started afresh or already failed is
// dropped.
func (d *digestResolver) process(ctx context.Context, it resolveItem) {
	if !d.current(it) {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, it.timeout)
	digest, err := d.resolver.Resolve(rctx, it.image)
	cancel()

	d.mu.Lock()
	if d.results[it.key] != it.result || it.result.done() {
		d.mu.Unlock()
		return
	}
	if err != nil {
		it.result.failures++
		it.result.retryAt = d.clock.Now().Add(retryDelay(it.result.failures))
		it.result.err = &resolveError{image: it.image, err: err}
	} else {
		it.result.digests[it.image] = digest
		it.result.pending--
	}
	finished := it.result.done()
	d.mu.Unlock()
	if finished {
		d.enqueue(ctx, it.key)
	}
}

func (d *digestResolver) current(it resolveItem) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.results[it.key] == it.result && !it.result.done()
}

// retryDelay is the wait after the failures-th failed resolution.
func retryDelay(failures int) time.Duration {
	delay := resolveRetryBase
	for i := 1; i < failures && delay < resolveRetryMax; i++ {
		delay *= 2
	}
	return min(delay, resolveRetryMax)
}

// skipsResolution reports whether image is on a registry whose tags are used as they are
// (config-deployment's registries-skipping-tag-resolving).
func skipsResolution(image string, registries []string) bool {
	registry, _, _ := strings.Cut(image, "/")
	return slices.Contains(registries, registry)
}
