package node

import (
	"sync"
	"time"
)

// ttlCache keeps values until their expiry, at most max of them: a full cache is emptied,
// which costs only fresh reads. Time is the caller's, so tests move it by hand.
type ttlCache[V any] struct {
	max int

	mu      sync.Mutex
	entries map[string]cached[V]
}

type cached[V any] struct {
	v       V
	expires time.Time
}

func newTTLCache[V any](max int) *ttlCache[V] {
	return &ttlCache[V]{max: max, entries: map[string]cached[V]{}}
}

// get is key's value, when it has one that has not expired at now.
func (c *ttlCache[V]) get(key string, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || !now.Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[V]) put(key string, v V, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		clear(c.entries)
	}
	c.entries[key] = cached[V]{v: v, expires: expires}
}
