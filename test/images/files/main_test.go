package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteThenRead(t *testing.T) {
	srv := httptest.NewServer(newHandler())
	defer srv.Close()
	p := filepath.Join(t.TempDir(), "f")
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/file?path="+p, strings.NewReader("hello"))
	if got := do(t, req); got.Error != "" || got.UID != os.Getuid() {
		t.Fatalf("PUT: %+v", got)
	}
	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/file?path="+p, nil)
	if got := do(t, req); got.Body != "hello" || got.UID != os.Getuid() || got.Mode == "" {
		t.Fatalf("GET: %+v", got)
	}
	req, _ = http.NewRequest(http.MethodPut, srv.URL+"/file?path="+filepath.Join(p, "under-a-file"), strings.NewReader("x"))
	if got := do(t, req); got.Error == "" {
		t.Fatal("PUT under a file: no error")
	}
}

func do(t *testing.T, req *http.Request) result {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r result
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}
