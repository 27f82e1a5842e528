package queue

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
)

// ErrQueueFull is the refusal of a request that finds every slot taken and the queue full.
var ErrQueueFull = errors.New("pending request queue full")

// Breaker admits at most capacity requests at a time and lets up to queueDepth more wait for a
// slot; a request beyond that is refused at once. It takes no lock: admission is two
// compare-and-swap loops on atomic counters (Knative #9019), and a waiter sleeps on a channel
// that a release pokes without blocking.
type Breaker struct {
	capacity int64 // requests running at once
	total    int64 // capacity + queue depth: requests admitted, running or waiting

	admitted atomic.Int64 // running + waiting, at most total
	running  atomic.Int64 // at most capacity
	// wake holds at most capacity tokens; a release leaves one when it frees a slot. A waiter
	// that finds every slot taken sleeps until it takes a token, then looks again. A token
	// dropped because the channel is full is never missed: capacity tokens wake capacity
	// waiters, as many as there are slots.
	wake chan struct{}
}

// NewBreaker returns a breaker with capacity slots and a queue of queueDepth; both must be
// positive.
func NewBreaker(capacity, queueDepth int) (*Breaker, error) {
	if capacity < 1 || queueDepth < 1 {
		return nil, fmt.Errorf("breaker: capacity %d and queue depth %d must be positive", capacity, queueDepth)
	}
	return &Breaker{
		capacity: int64(capacity),
		total:    int64(capacity) + int64(queueDepth),
		wake:     make(chan struct{}, capacity),
	}, nil
}

// Acquire takes a slot, waiting in the queue while every slot is taken. It returns
// ErrQueueFull at once when the queue is full too, and ctx's error when ctx ends while
// waiting. After a nil error the caller must call Release exactly once.
func (b *Breaker) Acquire(ctx context.Context) error {
	if !incrementBelow(&b.admitted, b.total) {
		return ErrQueueFull
	}
	for !incrementBelow(&b.running, b.capacity) {
		select {
		case <-b.wake:
		case <-ctx.Done():
			b.admitted.Add(-1)
			return ctx.Err()
		}
	}
	return nil
}

// Release gives back the slot of a request that Acquire admitted.
func (b *Breaker) Release() {
	if b.running.Add(-1) < b.capacity {
		select {
		case b.wake <- struct{}{}:
		default: // capacity tokens are waiting already
		}
	}
	b.admitted.Add(-1)
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
