package lifecycle

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakePart records its start and stop in a shared log and can be told to fail.
type fakePart struct {
	name      string
	log       *events
	ready     chan struct{}
	startErr  error         // returned at once from Start
	failAfter chan struct{} // closed: the part fails while running
	stopDelay time.Duration
	ignoreCtx bool // never stops
}

type events struct {
	mu sync.Mutex
	l  []string
}

func (e *events) add(s string) { e.mu.Lock(); e.l = append(e.l, s); e.mu.Unlock() }
func (e *events) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.l)
}

func (p *fakePart) Ready() <-chan struct{} { return p.ready }

func (p *fakePart) Start(ctx context.Context) error {
	p.log.add("start " + p.name)
	if p.startErr != nil {
		return p.startErr
	}
	close(p.ready)
	select {
	case <-ctx.Done():
	case <-p.failAfter:
		return errors.New("boom")
	}
	if p.ignoreCtx {
		select {}
	}
	time.Sleep(p.stopDelay)
	p.log.add("stop " + p.name)
	return nil
}

func newPart(name string, log *events) *fakePart {
	return &fakePart{name: name, log: log, ready: make(chan struct{}), failAfter: make(chan struct{})}
}

func TestStartInOrderStopInReverse(t *testing.T) {
	log := &events{}
	g := NewGroup(nil)
	for _, n := range []string{"a", "b", "c"} {
		g.Add(n, newPart(n, log))
	}
	ctx := context.Background()
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}
	if got := log.get(); !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
	select {
	case <-g.Failed():
		t.Errorf("a clean stop is not a failure: %v", g.Err())
	default:
	}
}

func TestFailedStartStopsTheStartedParts(t *testing.T) {
	log := &events{}
	g := NewGroup(nil)
	g.Add("a", newPart("a", log))
	bad := newPart("b", log)
	bad.startErr = errors.New("port taken")
	g.Add("b", bad)
	g.Add("c", newPart("c", log))
	err := g.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "b: port taken") {
		t.Fatalf("Start error = %v, want it to name b", err)
	}
	want := []string{"start a", "start b", "stop a"}
	if got := log.get(); !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}

func TestRuntimeFailureNamesThePart(t *testing.T) {
	log := &events{}
	g := NewGroup(nil)
	a, b := newPart("a", log), newPart("b", log)
	g.Add("a", a)
	g.Add("b", b)
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	close(b.failAfter)
	select {
	case <-g.Failed():
	case <-time.After(5 * time.Second):
		t.Fatal("group did not notice the failure")
	}
	if err := g.Err(); err == nil || err.Error() != "b: boom" {
		t.Errorf("Err = %v, want b: boom", err)
	}
	_ = g.Stop(context.Background())
}

func TestStopHonoursItsContext(t *testing.T) {
	log := &events{}
	g := NewGroup(nil)
	a := newPart("a", log)
	stuck := newPart("stuck", log)
	stuck.ignoreCtx = true
	g.Add("a", a)
	g.Add("stuck", stuck)
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	err := g.Stop(ctx)
	if err == nil || !strings.Contains(err.Error(), "stuck did not stop in time") {
		t.Errorf("Stop error = %v, want it to name the stuck part", err)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("Stop took %v past its 100ms deadline", d)
	}
}

func TestStartHonoursItsContext(t *testing.T) {
	g := NewGroup(nil)
	never := &neverReady{}
	g.Add("slow", never)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := g.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "slow: not ready") {
		t.Errorf("Start error = %v, want slow: not ready", err)
	}
}

type neverReady struct{}

func (neverReady) Ready() <-chan struct{} { return nil }
func (neverReady) Start(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
