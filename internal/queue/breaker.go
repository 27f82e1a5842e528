package queue

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
)

// ErrQueueFull is the refusal of a request that finds every slot taken and the queue full.
var ErrQueueFull = errors.New("pending request queue full")

// Breaker admits at most capacity requests at a time, lets up to queueDepth more wait for a
// slot in arrival order, and refuses any beyond that at once. It takes no lock (Knative #9019
// made its breaker lock-free for speed): admission is compare-and-swap on atomic counters.
//
// Unlike Knative's, a slot released while requests wait is handed to the longest waiter, not
// freed: a freed slot goes to whoever takes it first, and under saturation that is nearly
// always a newcomer running on a CPU rather than a waiter that still has to be woken, so
// waiters starve and the tail latency grows with the load. The hand-off is a token on a
// buffered channel, whose receivers are served first come, first served.
type Breaker struct {
	capacity int64 // requests running at once
	total    int64 // capacity + queue depth: requests admitted, running or waiting

	admitted atomic.Int64 // running + waiting, at most total
	running  atomic.Int64 // slots taken (handed-off slots stay taken), at most capacity
	waiting  atomic.Int64 // waiters not yet matched with a slot
	// handoff carries slots from Release to waiters: each token is a slot that stayed taken.
	// Release sends one only after matching a waiter (waiting-1), so it never blocks: at most
	// total tokens are ever outstanding.
	handoff chan struct{}
}

// NewBreaker returns a breaker with capacity slots and a queue of queueDepth; both must be
// positive.
func NewBreaker(capacity, queueDepth int) (*Breaker, error) {
	if capacity < 1 || queueDepth < 1 {
		return nil, fmt.Errorf("breaker: capacity %d and queue depth %d must be positive", capacity, queueDepth)
	}
	total := int64(capacity) + int64(queueDepth)
	return &Breaker{
		capacity: int64(capacity),
		total:    total,
		handoff:  make(chan struct{}, total),
	}, nil
}

// TryAcquire takes a free slot when nobody waits for one, without waiting; on true the caller
// must call Release exactly once.
func (b *Breaker) TryAcquire() bool {
	if !incrementBelow(&b.admitted, b.total) {
		return false
	}
	if b.waiting.Load() == 0 && incrementBelow(&b.running, b.capacity) {
		return true
	}
	b.admitted.Add(-1)
	return false
}

// Acquire takes a slot, waiting in the queue while every slot is taken. It returns
// ErrQueueFull at once when the queue is full too, and ctx's error when ctx ends while
// waiting. After a nil error the caller must call Release exactly once.
func (b *Breaker) Acquire(ctx context.Context) error {
	if !incrementBelow(&b.admitted, b.total) {
		return ErrQueueFull
	}
	// Nobody waits: take a free slot if there is one.
	if b.waiting.Load() == 0 && incrementBelow(&b.running, b.capacity) {
		return nil
	}
	b.waiting.Add(1)
	// A slot may have been freed between the look above and registering: a releaser that
	// saw no waiter frees its slot instead of handing it over.
	if incrementBelow(&b.running, b.capacity) {
		if !decrementAbove(&b.waiting, 0) {
			// A releaser matched this registration already; its token is one slot too many.
			<-b.handoff
			b.releaseSlot()
		}
		return nil
	}
	select {
	case <-b.handoff:
		return nil
	case <-ctx.Done():
		if !decrementAbove(&b.waiting, 0) {
			// Matched as the context ended: the slot is on its way; pass it on.
			<-b.handoff
			b.releaseSlot()
		}
		b.admitted.Add(-1)
		return ctx.Err()
	}
}

// Release gives back the slot of a request that Acquire admitted.
func (b *Breaker) Release() {
	b.releaseSlot()
	b.admitted.Add(-1)
}

// releaseSlot hands a slot to a waiter, or frees it when nobody waits.
func (b *Breaker) releaseSlot() {
	for {
		if decrementAbove(&b.waiting, 0) {
			b.handoff <- struct{}{}
			return
		}
		b.running.Add(-1)
		// A waiter that registered after the look above saw every slot taken and sleeps:
		// take the slot back for it, unless it is gone or someone else took the slot.
		if b.waiting.Load() == 0 || !incrementBelow(&b.running, b.capacity) {
			return
		}
	}
}

// InFlight is the number of requests admitted: running and waiting.
func (b *Breaker) InFlight() int { return int(b.admitted.Load()) }

// Capacity is the number of requests that run at once.
func (b *Breaker) Capacity() int { return int(b.capacity) }

// incrementBelow adds one to n unless n has reached limit, atomically.
func incrementBelow(n *atomic.Int64, limit int64) bool {
	for {
		cur := n.Load()
		if cur >= limit {
			return false
		}
		if n.CompareAndSwap(cur, cur+1) {
			return true
		}
	}
}

// decrementAbove takes one from n unless n is at floor, atomically.
func decrementAbove(n *atomic.Int64, floor int64) bool {
	for {
		cur := n.Load()
		if cur <= floor {
			return false
		}
		if n.CompareAndSwap(cur, cur-1) {
			return true
		}
	}
}
