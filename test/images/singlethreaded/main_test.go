package main

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

func TestSequentialOK(t *testing.T) {
	h := &handler{}
	for range 3 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?sleep=1", nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("code = %d, want 200", rec.Code)
		}
	}
}

func TestOverlapIs500(t *testing.T) {
	h := &handler{}
	var wg sync.WaitGroup
	first := httptest.NewRecorder()
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.ServeHTTP(first, httptest.NewRequest(http.MethodGet, "/?sleep=300", nil))
	}()
	// Wait until the first request is inside the handler.
	for deadline := time.Now().Add(2 * time.Second); h.inFlight.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("first request never started")
		}
		time.Sleep(time.Millisecond)
	}
	second := httptest.NewRecorder()
	h.ServeHTTP(second, httptest.NewRequest(http.MethodGet, "/?sleep=1", nil))
	wg.Wait()
	if first.Code != http.StatusOK || second.Code != http.StatusInternalServerError {
		t.Errorf("codes = %d, %d; want 200, 500", first.Code, second.Code)
	}
	// After the overlap the server accepts requests again.
	third := httptest.NewRecorder()
	h.ServeHTTP(third, httptest.NewRequest(http.MethodGet, "/?sleep=1", nil))
	if third.Code != http.StatusOK {
		t.Errorf("after overlap: code = %d, want 200", third.Code)
	}
}

func TestBadSleep(t *testing.T) {
	rec := httptest.NewRecorder()
	(&handler{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?sleep=x", nil))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("code = %d, want 400", rec.Code)
	}
}
