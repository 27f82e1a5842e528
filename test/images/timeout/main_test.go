package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHandle(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(handle))
	defer srv.Close()

	start := time.Now()
	resp, err := http.Get(srv.URL + "/?initialTimeout=100&timeout=200&interval=50")
	if err != nil {
		t.Fatal(err)
	}
	headers := time.Since(start)
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	total := time.Since(start)
	if headers < 100*time.Millisecond {
		t.Errorf("headers after %v, want ≥ 100ms", headers)
	}
	if total < 300*time.Millisecond {
		t.Errorf("body done after %v, want ≥ 300ms", total)
	}
	if n := strings.Count(string(body), "."); n < 3 || !strings.HasSuffix(string(body), "\n") {
		t.Errorf("body = %q, want ≥ 3 dots and a newline", body)
	}
}

func TestBadParams(t *testing.T) {
	for _, q := range []string{"?initialTimeout=x", "?timeout=-5", "?interval=0", "?timeout=999999999999"} {
		rec := httptest.NewRecorder()
		handle(rec, httptest.NewRequest(http.MethodGet, "/"+q, nil))
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s: code = %d, want 400", q, rec.Code)
		}
	}
}
