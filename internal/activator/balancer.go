package activator

import (
	"math/rand/v2"
	"sync/atomic"
)

// pod is one ready pod of a revision and the requests it serves now.
type pod struct {
	addr     string // ip:port of its queue-proxy
	inFlight atomic.Int64
}

// tryAcquire takes one of the pod's slots; capacity 0 is unlimited.
func (p *pod) tryAcquire(capacity int64) bool {
	for {
		n := p.inFlight.Load()
		if capacity > 0 && n >= capacity {
			return false
		}
		if p.inFlight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (p *pod) release() { p.inFlight.Add(-1) }

// policy picks a pod and takes a slot on it, or returns nil when every pod is full. pods is
// not empty.
type policy func(pods []*pod, capacity int64) *pod

// policyFor chooses the policy by containerConcurrency, as Knative's activator does: unlimited
// concurrency balances by the power of two choices; a small limit (1–3) fills the first pod
// with a free slot, so the queue-proxies' own queues stay empty; larger limits go round robin.
func policyFor(cc int64) policy {
	switch {
	case cc == 0:
		return powerOfTwoChoices
	case cc <= 3:
		return firstAvailable
	default:
		var next atomic.Uint64
		return func(pods []*pod, capacity int64) *pod { return roundRobin(pods, capacity, &next) }
	}
}

// powerOfTwoChoices takes the less busy of two pods picked at random. Capacity is unlimited.
func powerOfTwoChoices(pods []*pod, _ int64) *pod {
	a := pods[rand.IntN(len(pods))]
	if len(pods) > 1 {
		b := pods[rand.IntN(len(pods)-1)]
		if b == a {
			b = pods[len(pods)-1]
		}
		if b.inFlight.Load() < a.inFlight.Load() {
			a = b
		}
	}
	a.inFlight.Add(1)
	return a
}

// firstAvailable takes the first pod, in a stable order, with a free slot.
func firstAvailable(pods []*pod, capacity int64) *pod {
	for _, p := range pods {
		if p.tryAcquire(capacity) {
			return p
		}
	}
	return nil
}

// roundRobin takes the next pod after the last one chosen that has a free slot.
func roundRobin(pods []*pod, capacity int64, next *atomic.Uint64) *pod {
	start := next.Add(1)
	for i := range uint64(len(pods)) {
		p := pods[(start+i)%uint64(len(pods))]
		if p.tryAcquire(capacity) {
			return p
		}
	}
	return nil
}
