package activator

import (
	"fmt"
	"testing"
)

func pods(n int) []*pod {
	out := make([]*pod, n)
	for i := range out {
		out[i] = &pod{addr: fmt.Sprintf("10.0.0.%d:8012", i+1)}
	}
	return out
}

func TestFirstAvailableFillsInOrderAndRespectsCapacity(t *testing.T) {
	ps := pods(2)
	pick := policyFor(1)
	a, b, c := pick(ps, 1), pick(ps, 1), pick(ps, 1)
	if a != ps[0] || b != ps[1] || c != nil {
		t.Fatalf("picks = %v %v %v, want pod 1, pod 2, then none", a, b, c)
	}
	a.release()
	if got := pick(ps, 1); got != ps[0] {
		t.Errorf("after a release: %v, want pod 1 again", got)
	}
}

func TestRoundRobinSpreadsAndTracksCapacity(t *testing.T) {
	ps := pods(3)
	pick := policyFor(10)
	counts := map[*pod]int{}
	for range 30 {
		p := pick(ps, 10)
		if p == nil {
			t.Fatal("no pod with 30 slots free")
		}
		counts[p]++
	}
	for _, p := range ps {
		if counts[p] != 10 {
			t.Errorf("%s got %d, want 10 of 30", p.addr, counts[p])
		}
	}
	if p := pick(ps, 10); p != nil {
		t.Errorf("every pod full, got %s", p.addr)
	}
}

func TestPowerOfTwoChoicesPrefersTheIdle(t *testing.T) {
	ps := pods(2)
	ps[0].inFlight.Store(100)
	pick := policyFor(0)
	for range 20 {
		if p := pick(ps, 0); p != ps[1] {
			t.Fatalf("picked the busy pod")
		}
		ps[1].release()
	}
	if p := pick(pods(1), 0); p == nil {
		t.Error("one pod: no pick")
	}
}
