package queue

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gantry-run/gantry/internal/poll"
)

func TestBreakerAdmitsCapacityQueuesTenTimesThenRefuses(t *testing.T) {
	const capacity = 2
	b, err := NewBreaker(capacity, 10*capacity)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range capacity {
		if err := b.Acquire(ctx); err != nil {
			t.Fatalf("acquire %d: %v, want a slot", i, err)
		}
	}
	// The next 10 × capacity wait.
	var admitted sync.WaitGroup
	for range 10 * capacity {
		admitted.Go(func() {
			if err := b.Acquire(ctx); err != nil {
				t.Errorf("queued acquire: %v", err)
				return
			}
			b.Release()
		})
	}
	waitFor(t, "every queue slot taken", func() bool { return b.InFlight() == 11*capacity })
	if err := b.Acquire(ctx); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("acquire beyond the queue = %v, want ErrQueueFull", err)
	}
	// Freeing the slots lets every queued request through.
	for range capacity {
		b.Release()
	}
	admitted.Wait()
	if got := b.InFlight(); got != 0 {
		t.Errorf("in flight after all released = %d, want 0", got)
	}
}

func TestBreakerWaiterLeavesTheQueueWhenItsContextEnds(t *testing.T) {
	b, _ := NewBreaker(1, 1)
	if err := b.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("acquire while full = %v, want the context's deadline", err)
	}
	if got := b.InFlight(); got != 1 {
		t.Errorf("in flight = %d, want 1: the waiter gave its queue slot back", got)
	}
}

func TestBreakerNeverRunsMoreThanCapacity(t *testing.T) {
	const capacity, workers = 3, 64
	b, _ := NewBreaker(capacity, workers)
	var mu sync.Mutex
	running, most := 0, 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range 200 {
				if err := b.Acquire(context.Background()); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				running++
				most = max(most, running)
				mu.Unlock()
				mu.Lock()
				running--
				mu.Unlock()
				b.Release()
			}
		})
	}
	wg.Wait()
	if most > capacity {
		t.Errorf("at most %d ran at once, want ≤ %d", most, capacity)
	}
}

func TestNewBreakerRefusesNonPositiveSizes(t *testing.T) {
	for _, c := range [][2]int{{0, 1}, {1, 0}, {-1, 10}} {
		if _, err := NewBreaker(c[0], c[1]); err == nil {
			t.Errorf("NewBreaker(%d, %d) = nil error", c[0], c[1])
		}
	}
}

// waitFor waits up to 5 s for cond, through internal/poll.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, what, 5*time.Second, func(context.Context) (bool, error) { return cond(), nil })
}
