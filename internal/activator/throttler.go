package activator

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
)

// Errors a request gets when it cannot be sent to a pod.
var (
	// ErrQueueFull: the revision's queue holds as many requests as it may; answered 503.
	ErrQueueFull = errors.New("too many requests are waiting for this revision")
)

// throttler holds one revision's ready pods and the requests waiting for a slot on one. The
// waiting requests are bounded; each waits until a pod has a free slot or its context ends.
type throttler struct {
	capacity int64 // per pod; 0 is unlimited
	pick     policy
	maxQueue int64

	mu      sync.Mutex
	pods    []*pod
	waiting int64
	changed chan struct{} // closed and replaced when a slot frees or the pods change
}

func newThrottler(cc int64, maxQueue int64) *throttler {
	return &throttler{capacity: cc, pick: policyFor(cc), maxQueue: maxQueue, changed: make(chan struct{})}
}

// setPods replaces the ready pods by addrs, keeping the in-flight counts of pods that stay.
func (t *throttler) setPods(addrs []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	byAddr := make(map[string]*pod, len(t.pods))
	for _, p := range t.pods {
		byAddr[p.addr] = p
	}
	slices.Sort(addrs)
	next := make([]*pod, 0, len(addrs))
	for _, a := range addrs {
		if p, ok := byAddr[a]; ok {
			next = append(next, p)
		} else {
			next = append(next, &pod{addr: a})
		}
	}
	t.pods = next
	t.broadcastLocked()
}

func (t *throttler) podCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pods)
}

func (t *throttler) broadcastLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// acquire waits for a slot on a ready pod and returns it with the func that gives the slot
// back. noPods is called (without the lock) each time the revision has no ready pod while a
// request waits, so the caller can ask for one. It fails with ErrQueueFull when too many
// requests wait already, or with ctx's error.
func (t *throttler) acquire(ctx context.Context, noPods func()) (*pod, func(), error) {
	t.mu.Lock()
	if t.waiting >= t.maxQueue {
		t.mu.Unlock()
		return nil, nil, ErrQueueFull
	}
	t.waiting++
	defer func() {
		t.mu.Lock()
		t.waiting--
		t.mu.Unlock()
	}()
	for {
		var p *pod
		if len(t.pods) > 0 {
			p = t.pick(t.pods, t.capacity)
		}
		changed, none := t.changed, len(t.pods) == 0
		t.mu.Unlock()
		if p != nil {
			return p, func() { t.release(p) }, nil
		}
		if none {
			noPods()
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, nil, context.Cause(ctx)
		}
		t.mu.Lock()
	}
}

// tryAcquire takes a slot on a ready pod at once, when one is free and no request waits for
// one; false otherwise.
func (t *throttler) tryAcquire() (*pod, func(), bool) {
	t.mu.Lock()
	var p *pod
	if t.waiting == 0 && len(t.pods) > 0 {
		p = t.pick(t.pods, t.capacity)
	}
	t.mu.Unlock()
	if p == nil {
		return nil, nil, false
	}
	return p, func() { t.release(p) }, true
}

func (t *throttler) release(p *pod) {
	p.release()
	if t.capacity > 0 {
		t.mu.Lock()
		t.broadcastLocked()
		t.mu.Unlock()
	}
}

// passTarget picks, at random, the ready pod a client connection may be passed to, when the
// revision takes any number of requests per pod (capacity 0) and no request waits.
func (t *throttler) passTarget() (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.capacity != 0 || t.waiting > 0 || len(t.pods) == 0 {
		return "", false
	}
	return t.pods[rand.IntN(len(t.pods))].addr, true
}
