package queue

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

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

func TestBreakerHandsSlotsToWaitersInArrivalOrder(t *testing.T) {
	b, _ := NewBreaker(1, 10)
	if err := b.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := make(chan int, 10)
	start := func(i, inFlight int) {
		go func() {
			if err := b.Acquire(context.Background()); err != nil {
				t.Error(err)
				return
			}
			got <- i
		}()
		waitFor(t, "waiter "+strconv.Itoa(i)+" queued", func() bool { return b.InFlight() == inFlight && b.waiting.Load() >= 1 })
		// Registered; give it the moment it needs to block on the hand-off channel, whose
		// receivers are served in the order they blocked.
		time.Sleep(20 * time.Millisecond)
	}
	for i := 1; i <= 3; i++ {
		start(i, i+1)
	}
	var order []int
	for i := 1; i <= 3; i++ {
		b.Release() // the holder's slot goes to the longest waiter
		order = append(order, <-got)
		if i == 1 {
			// A newcomer while others wait queues behind them, even as slots change hands.
			start(4, 4) // 1 runs, 2 and 3 wait, and 4

		}
	}
	b.Release()
	order = append(order, <-got)
	if diff := cmp.Diff([]int{1, 2, 3, 4}, order); diff != "" {
		t.Errorf("order of admission (-want +got):\n%s", diff)
	}
	b.Release()
	if b.InFlight() != 0 || b.running.Load() != 0 || b.waiting.Load() != 0 {
		t.Errorf("after all released: admitted %d, running %d, waiting %d, want 0", b.InFlight(), b.running.Load(), b.waiting.Load())
	}
}

func TestBreakerUnderChurnWithCancellations(t *testing.T) {
	const capacity, workers = 4, 64
	b, _ := NewBreaker(capacity, workers)
	var running, most atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range 300 {
				ctx, cancel := context.Background(), context.CancelFunc(func() {})
				if (w+i)%3 == 0 { // a third of the requests give up soon
					ctx, cancel = context.WithTimeout(ctx, time.Duration(i%50)*time.Microsecond)
				}
				err := b.Acquire(ctx)
				cancel()
				if err != nil {
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("acquire: %v", err)
						return
					}
					continue
				}
				n := running.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				runtime.Gosched()
				running.Add(-1)
				b.Release()
			}
		})
	}
	wg.Wait()
	if m := most.Load(); m > capacity {
		t.Errorf("at most %d ran at once, want ≤ %d", m, capacity)
	}
	if b.InFlight() != 0 || b.running.Load() != 0 || b.waiting.Load() != 0 || len(b.handoff) != 0 {
		t.Errorf("at rest: admitted %d, running %d, waiting %d, tokens %d, want all 0",
			b.InFlight(), b.running.Load(), b.waiting.Load(), len(b.handoff))
	}
	// Every slot is still there.
	for range capacity {
		if err := b.Acquire(context.Background()); err != nil {
			t.Fatalf("a slot was lost: %v", err)
		}
	}
}

func BenchmarkBreaker(b *testing.B) {
	br, _ := NewBreaker(10, 100)
	ctx := context.Background()
	b.Run("uncontended", func(b *testing.B) {
		for b.Loop() {
			if err := br.Acquire(ctx); err != nil {
				b.Fatal(err)
			}
			br.Release()
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(25) // more goroutines than slots: waits and hand-offs
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := br.Acquire(ctx); err != nil {
					b.Error(err)
					return
				}
				br.Release()
			}
		})
	})
}
