package connpool

import (
	"sync/atomic"
	"testing"
	"time"
)

type fakeConn struct {
	name   string
	closed atomic.Bool
}

func (c *fakeConn) Close() error {
	c.closed.Store(true)
	return nil
}

// idle counts the connections p keeps, over all addresses.
func idle(p *Pool[*fakeConn]) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, conns := range p.idle {
		n += len(conns)
	}
	return n
}

// clock is a hand-moved time for a pool.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestPool(maxIdle int, timeout time.Duration) (*Pool[*fakeConn], *clock) {
	clk := &clock{t: time.Unix(1000, 0)}
	p := New[*fakeConn](maxIdle, timeout)
	p.now = clk.now
	return p, clk
}

func TestGetTakesTheMostRecentUsableConnection(t *testing.T) {
	p, _ := newTestPool(10, time.Hour)
	a, b, c := &fakeConn{name: "a"}, &fakeConn{name: "b"}, &fakeConn{name: "c"}
	p.Put("x", a)
	p.Put("x", b)
	p.Put("x", c)
	p.Put("y", &fakeConn{name: "y"})

	got, ok := p.Get("x", func(c *fakeConn) bool { return c.name != "c" })
	if !ok || got != b {
		t.Fatalf("Get = %v, %v; want b (c refused, then the most recent)", got, ok)
	}
	if !c.closed.Load() || b.closed.Load() || a.closed.Load() {
		t.Errorf("closed: a %v, b %v, c %v; want only the refused c", a.closed.Load(), b.closed.Load(), c.closed.Load())
	}
	if got, ok := p.Get("x", nil); !ok || got != a {
		t.Errorf("second Get = %v, %v; want a", got, ok)
	}
	if got, ok := p.Get("x", nil); ok {
		t.Errorf("third Get = %v; want none left", got)
	}
	if n := idle(p); n != 1 {
		t.Errorf("Idle() = %d; want 1 (y's)", n)
	}
}

func TestPutClosesBeyondMaxIdle(t *testing.T) {
	p, _ := newTestPool(2, time.Hour)
	conns := []*fakeConn{{name: "1"}, {name: "2"}, {name: "3"}}
	for _, c := range conns {
		p.Put("x", c)
	}
	if conns[0].closed.Load() || conns[1].closed.Load() || !conns[2].closed.Load() {
		t.Errorf("closed: %v %v %v; want only the third", conns[0].closed.Load(), conns[1].closed.Load(), conns[2].closed.Load())
	}
	if n := idle(p); n != 2 {
		t.Errorf("Idle() = %d; want 2", n)
	}
}

func TestGetClosesExpiredConnections(t *testing.T) {
	p, clk := newTestPool(10, time.Minute)
	old := &fakeConn{name: "old"}
	p.Put("x", old)
	clk.t = clk.t.Add(30 * time.Second)
	fresh := &fakeConn{name: "fresh"}
	p.Put("x", fresh)
	clk.t = clk.t.Add(40 * time.Second) // old idle 70 s, fresh 40 s

	if got, ok := p.Get("x", nil); !ok || got != fresh {
		t.Fatalf("Get = %v, %v; want fresh", got, ok)
	}
	if got, ok := p.Get("x", nil); ok {
		t.Fatalf("Get = %v; want none: old is past the idle timeout", got)
	}
	if !old.closed.Load() {
		t.Error("the expired connection was not closed")
	}
}

func TestSweepClosesStaleConnections(t *testing.T) {
	p := New[*fakeConn](10, 50*time.Millisecond)
	gone := &fakeConn{name: "pod that is gone"}
	p.Put("10.0.0.9:8012", gone)
	deadline := time.Now().Add(10 * time.Second)
	for idle(p) > 0 || !gone.closed.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %d idle, closed %v; want the sweep to close it", idle(p), gone.closed.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The sweep stopped with nothing kept; a new connection starts it again.
	again := &fakeConn{name: "again"}
	p.Put("10.0.0.9:8012", again)
	for !again.closed.Load() {
		if time.Now().After(deadline) {
			t.Fatal("a connection put after the sweep stopped was never swept")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCloseAndCloseIdle(t *testing.T) {
	p, _ := newTestPool(10, time.Hour)
	a := &fakeConn{name: "a"}
	p.Put("x", a)
	p.CloseIdle()
	if !a.closed.Load() || idle(p) != 0 {
		t.Fatalf("CloseIdle: a closed %v, %d idle; want closed, none", a.closed.Load(), idle(p))
	}
	b := &fakeConn{name: "b"}
	p.Put("x", b)
	if b.closed.Load() || idle(p) != 1 {
		t.Fatalf("Put after CloseIdle: closed %v, %d idle; want kept", b.closed.Load(), idle(p))
	}
	p.Close()
	c := &fakeConn{name: "c"}
	p.Put("x", c)
	if !b.closed.Load() || !c.closed.Load() || idle(p) != 0 {
		t.Errorf("after Close: b closed %v, c closed %v, %d idle; want both closed, none kept", b.closed.Load(), c.closed.Load(), idle(p))
	}
}

// The hot path of a hop with one request at a time: Get empties an address's list and Put
// refills it, without allocating.
func TestGetThenPutDoesNotAllocate(t *testing.T) {
	p, _ := newTestPool(10, time.Hour)
	c := &fakeConn{name: "a"}
	p.Put("10.0.0.9:8012", c)
	allocs := testing.AllocsPerRun(100, func() {
		got, ok := p.Get("10.0.0.9:8012", nil)
		if !ok {
			t.Fatal("Get found nothing")
		}
		p.Put("10.0.0.9:8012", got)
	})
	if allocs != 0 {
		t.Errorf("Get then Put: %.1f allocations, want 0", allocs)
	}
}
