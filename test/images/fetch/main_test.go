package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

func get(t *testing.T, h http.Handler, path string) result {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	var r result
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("GET %s: %d %q: %v", path, rec.Code, rec.Body.String(), err)
	}
	return r
}

func TestFetch(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte("short and stout"))
	}))
	defer target.Close()
	h := newHandler()
	if r := get(t, h, "/fetch?url="+url.QueryEscape(target.URL)); r.Status != http.StatusTeapot || r.Body != "short and stout" {
		t.Errorf("fetch = %+v", r)
	}
	if r := get(t, h, "/fetch?url="+url.QueryEscape("http://127.0.0.1:1/")); r.Error == "" {
		t.Errorf("fetch of a closed port = %+v, want an error", r)
	}
}

func TestResolveAndFile(t *testing.T) {
	h := newHandler()
	if r := get(t, h, "/resolve?name=127.0.0.1"); len(r.Addrs) != 1 || r.Addrs[0] != "127.0.0.1" {
		t.Errorf("resolve = %+v", r)
	}
	path := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(path, []byte("nameserver 10.42.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := get(t, h, "/file?path="+url.QueryEscape(path)); r.Body != "nameserver 10.42.0.1\n" {
		t.Errorf("file = %+v", r)
	}
}

func TestPeer(t *testing.T) {
	// httptest.NewRequest's caller is 192.0.2.1:1234.
	if got := get(t, newHandler(), "/peer"); got.Body != "192.0.2.1" || got.Error != "" {
		t.Errorf("/peer = %+v, want the caller's address 192.0.2.1", got)
	}
}

func TestBench(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer target.Close()
	h := newHandler()
	for _, fresh := range []string{"0", "1"} {
		got := get(t, h, "/bench?n=5&new="+fresh+"&url="+url.QueryEscape(target.URL))
		if got.Error != "" || len(got.Nanos) != 5 || got.Nanos[0] <= 0 {
			t.Errorf("/bench new=%s = %+v, want 5 timings", fresh, got)
		}
	}
	if got := get(t, h, "/bench?n=0&url=x"); got.Error == "" {
		t.Errorf("/bench?n=0 = %+v, want an error", got)
	}
}
