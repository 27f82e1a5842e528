package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestParseDelay(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"", 5 * time.Second, false},
		{"3", 3 * time.Second, false},
		{"250ms", 250 * time.Millisecond, false},
		{"-1", 0, true},
		{"soon", 0, true},
	} {
		got, err := parseDelay(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseDelay(%q) = %v, %v; want %v, err=%v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestHandle(t *testing.T) {
	rec := httptest.NewRecorder()
	handle(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != 200 {
		t.Errorf("code = %d", rec.Code)
	}
}

// TestExitCode runs main in a child process and checks it exits with code 5 after DELAY.
func TestExitCode(t *testing.T) {
	if os.Getenv("FAILING_RUN_MAIN") == "1" {
		main()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestExitCode$")
	cmd.Env = append(os.Environ(), "FAILING_RUN_MAIN=1", "DELAY=100ms", "PORT=0")
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("child did not exit")
	}
	if got := cmd.ProcessState.ExitCode(); got != exitCode {
		t.Errorf("exit code = %d, want %d", got, exitCode)
	}
}
