package main

import (
	"net/http/httptest"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func do(h *handler, method, target string) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Code
}

func TestProbesFollowTime(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	h := newHandler(clk.now, 2*time.Second, 10*time.Second)
	steps := []struct {
		at          time.Duration
		ready, live int
	}{
		{0, 503, 200},
		{1999 * time.Millisecond, 503, 200},
		{2 * time.Second, 200, 200},
		{9 * time.Second, 200, 200},
		{10 * time.Second, 200, 500},
	}
	for _, s := range steps {
		clk.t = time.Unix(1000, 0).Add(s.at)
		if got := do(h, "GET", "/readyz"); got != s.ready {
			t.Errorf("at %v: /readyz = %d, want %d", s.at, got, s.ready)
		}
		if got := do(h, "GET", "/healthz"); got != s.live {
			t.Errorf("at %v: /healthz = %d, want %d", s.at, got, s.live)
		}
	}
}

func TestToggle(t *testing.T) {
	clk := &fakeClock{t: time.Unix(0, 0)}
	h := newHandler(clk.now, 0, 0)
	if do(h, "GET", "/readyz") != 200 || do(h, "GET", "/healthz") != 200 {
		t.Fatal("want ready and live at start")
	}
	if got := do(h, "GET", "/toggle"); got != 405 {
		t.Errorf("GET /toggle = %d, want 405", got)
	}
	if got := do(h, "POST", "/toggle"); got != 200 {
		t.Fatalf("POST /toggle = %d", got)
	}
	if got := do(h, "GET", "/readyz"); got != 503 {
		t.Errorf("after toggle: /readyz = %d, want 503", got)
	}
	do(h, "POST", "/toggle?probe=liveness")
	if got := do(h, "GET", "/healthz"); got != 500 {
		t.Errorf("after liveness toggle: /healthz = %d, want 500", got)
	}
	do(h, "POST", "/toggle")
	if got := do(h, "GET", "/readyz"); got != 200 {
		t.Errorf("after second toggle: /readyz = %d, want 200", got)
	}
	if got := do(h, "POST", "/toggle?probe=bogus"); got != 400 {
		t.Errorf("bogus probe = %d, want 400", got)
	}
}
