package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadCgroup(t *testing.T) {
	for _, tc := range []struct {
		name       string
		files      map[string]string
		mem, milli int64 // -1: nil
	}{
		{"v2 limited", map[string]string{"memory.max": "134217728\n", "cpu.max": "50000 100000\n"}, 134217728, 500},
		{"v2 unlimited", map[string]string{"memory.max": "max\n", "cpu.max": "max 100000\n"}, -1, -1},
		{"v1 limited", map[string]string{
			"memory/memory.limit_in_bytes": "268435456\n",
			"cpu/cpu.cfs_quota_us":         "200000\n",
			"cpu/cpu.cfs_period_us":        "100000\n",
		}, 268435456, 2000},
		{"v1 unlimited", map[string]string{
			"memory/memory.limit_in_bytes": "9223372036854771712\n",
			"cpu/cpu.cfs_quota_us":         "-1\n",
			"cpu/cpu.cfs_period_us":        "100000\n",
		}, -1, -1},
		{"none", nil, -1, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, tc.files)
			cg := readCgroup(root)
			check := func(what string, got *int64, want int64) {
				if want == -1 && got != nil {
					t.Errorf("%s = %d, want unlimited", what, *got)
				}
				if want != -1 && (got == nil || *got != want) {
					t.Errorf("%s = %v, want %d", what, got, want)
				}
			}
			check("memory", cg.MemoryLimitBytes, tc.mem)
			check("cpu", cg.CPUMillicores, tc.milli)
			if len(cg.Files) != len(tc.files) {
				t.Errorf("files = %v, want %d entries", cg.Files, len(tc.files))
			}
		})
	}
}

func TestServeHTTP(t *testing.T) {
	proc := t.TempDir()
	writeFiles(t, proc, map[string]string{"1/status": "", "42/status": "", "self/status": "", "7/x": ""})
	c := &collector{
		cgroupRoot: t.TempDir(),
		procRoot:   proc,
		args:       []string{"/app", "--flag"},
		stdin:      func() Stdin { return Stdin{EOF: true} },
	}
	t.Setenv("RUNTIME_TEST_VAR", "yes")
	req := httptest.NewRequest(http.MethodGet, "http://svc.example/path?x=1", nil)
	req.Header.Set("X-Test", "a")
	rec := httptest.NewRecorder()
	c.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("code = %d", rec.Code)
	}
	var rep Report
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatalf("decoding %q: %v", rec.Body.String(), err)
	}
	if rep.Env["RUNTIME_TEST_VAR"] != "yes" {
		t.Errorf("env missing RUNTIME_TEST_VAR: %v", rep.Env)
	}
	if got := rep.Headers["X-Test"]; len(got) != 1 || got[0] != "a" {
		t.Errorf("headers[X-Test] = %v", got)
	}
	if rep.Host != "svc.example" || rep.URI != "/path?x=1" {
		t.Errorf("host, uri = %q, %q", rep.Host, rep.URI)
	}
	if strings.Join(rep.Args, " ") != "/app --flag" {
		t.Errorf("args = %v", rep.Args)
	}
	if len(rep.PIDs) != 3 || rep.PIDs[0] != 1 || rep.PIDs[1] != 7 || rep.PIDs[2] != 42 {
		t.Errorf("pids = %v, want [1 7 42]", rep.PIDs)
	}
	if !rep.Stdin.EOF {
		t.Errorf("stdin = %+v, want EOF", rep.Stdin)
	}
	if rep.User.UID != os.Getuid() {
		t.Errorf("uid = %d, want %d", rep.User.UID, os.Getuid())
	}
}

type blockingReader struct{ ch chan struct{} }

func (b blockingReader) Read([]byte) (int, error) { <-b.ch; return 0, io.EOF }

func TestProbeStdin(t *testing.T) {
	if s := probeStdin(strings.NewReader(""), time.Second); !s.EOF {
		t.Errorf("empty reader: %+v, want EOF", s)
	}
	if s := probeStdin(strings.NewReader("x"), time.Second); s.EOF || s.Error == "" {
		t.Errorf("reader with data: %+v, want not EOF with a reason", s)
	}
	b := blockingReader{ch: make(chan struct{})}
	defer close(b.ch)
	if s := probeStdin(b, 20*time.Millisecond); s.EOF {
		t.Errorf("blocking reader: %+v, want not EOF", s)
	}
}

func TestReadOnly(t *testing.T) {
	// A temp dir is writable; this only checks the call works.
	if readOnly(t.TempDir()) {
		t.Error("temp dir reported read-only")
	}
}
