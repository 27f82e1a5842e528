package activator

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestThrottlerWaitsForAPodAndAsksForOne(t *testing.T) {
	th := newThrottler(1, 10)
	var asked atomic.Int32
	got := make(chan *pod, 1)
	go func() {
		p, _, err := th.acquire(context.Background(), func() { asked.Add(1) })
		if err != nil {
			t.Error(err)
		}
		got <- p
	}()
	time.Sleep(20 * time.Millisecond)
	if asked.Load() == 0 {
		t.Fatal("a request waiting with no pod did not ask for one")
	}
	th.setPods([]string{"10.0.0.1:8012"})
	select {
	case p := <-got:
		if p.addr != "10.0.0.1:8012" {
			t.Errorf("got %s", p.addr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting request was not released when a pod appeared")
	}
}

func TestThrottlerQueuesBehindAFullPod(t *testing.T) {
	th := newThrottler(1, 10)
	th.setPods([]string{"10.0.0.1:8012"})
	_, release, err := th.acquire(context.Background(), func() {})
	if err != nil {
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() {
		_, rel, err := th.acquire(context.Background(), func() {})
		if err == nil {
			rel()
		}
		second <- err
	}()
	select {
	case err := <-second:
		t.Fatalf("the second request got the full pod: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if err := <-second; err != nil {
		t.Fatal(err)
	}
}

func TestThrottlerBoundsItsQueueAndHonoursDeadlines(t *testing.T) {
	th := newThrottler(1, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 2 {
		go func() { _, _, _ = th.acquire(ctx, func() {}) }()
	}
	time.Sleep(20 * time.Millisecond)
	if _, _, err := th.acquire(context.Background(), func() {}); !errors.Is(err, ErrQueueFull) {
		t.Errorf("third waiter: %v, want ErrQueueFull", err)
	}
	short, stop := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer stop()
	cancel()
	time.Sleep(20 * time.Millisecond)
	if _, _, err := th.acquire(short, func() {}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiter past its deadline: %v, want DeadlineExceeded", err)
	}
}

func TestSetPodsKeepsInFlightCounts(t *testing.T) {
	th := newThrottler(2, 10)
	th.setPods([]string{"a", "b"})
	p, _, _ := th.acquire(context.Background(), func() {})
	th.setPods([]string{"b", "a", "c"})
	if th.podCount() != 3 {
		t.Fatalf("pods = %d", th.podCount())
	}
	for _, q := range th.pods {
		if q.addr == p.addr && q.inFlight.Load() != 1 {
			t.Errorf("%s lost its in-flight count", q.addr)
		}
	}
}
