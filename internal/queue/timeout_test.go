package queue

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// slowUser is a user container whose response, for path /<first>/<every>/<n>, writes its
// first byte after first, then n more lines every interval.
func slowUser(t *testing.T) int {
	return startUser(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var first, every time.Duration
		var n int
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		first, _ = time.ParseDuration(parts[0])
		if len(parts) == 3 {
			every, _ = time.ParseDuration(parts[1])
			n, _ = strconv.Atoi(parts[2])
		}
		wait := func(d time.Duration) bool {
			select {
			case <-time.After(d):
				return true
			case <-r.Context().Done():
				return false
			}
		}
		if !wait(first) {
			return
		}
		_, _ = io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		for range n {
			if !wait(every) {
				return
			}
			_, _ = io.WriteString(w, "more\n")
			w.(http.Flusher).Flush()
		}
	}))
}

func TestTimeouts(t *testing.T) {
	port := slowUser(t)
	for _, tc := range []struct {
		name                       string
		total, responseStart, idle time.Duration
		path                       string
		wantCode                   int
		wantBody                   string // the whole body, or its start when wantCut
		wantCut                    bool   // the stream ends with an error, not cleanly
	}{
		{name: "in time", total: time.Second, path: "/10ms/10ms/3", wantCode: 200, wantBody: "first\nmore\nmore\nmore\n"},
		{name: "total passes before the first byte: 504", total: 200 * time.Millisecond, path: "/2s", wantCode: 504, wantBody: "queue-proxy: request timed out before the response started\n"},
		{name: "total passes after the first byte: the stream is cut", total: 300 * time.Millisecond, path: "/0s/100ms/20", wantCode: 200, wantBody: "first\nmore\n", wantCut: true},
		{name: "response start passes: 504", total: 5 * time.Second, responseStart: 200 * time.Millisecond, path: "/2s", wantCode: 504},
		{name: "response started in time, then streams past the response start timeout", total: 5 * time.Second, responseStart: 200 * time.Millisecond, path: "/0s/100ms/4", wantCode: 200, wantBody: "first\nmore\nmore\nmore\nmore\n"},
		{name: "steady stream longer than the idle timeout", total: 5 * time.Second, idle: 300 * time.Millisecond, path: "/0s/50ms/12", wantCode: 200, wantBody: "first\n" + strings.Repeat("more\n", 12)},
		{name: "idle before the first byte: 504", total: 5 * time.Second, idle: 200 * time.Millisecond, path: "/2s", wantCode: 504},
		{name: "idle after the first byte: the stream is cut", total: 5 * time.Second, idle: 200 * time.Millisecond, path: "/0s/2s/1", wantCode: 200, wantBody: "first\n", wantCut: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(port)
			cfg.Timeout, cfg.ResponseStartTimeout, cfg.IdleTimeout = tc.total, tc.responseStart, tc.idle
			_, url := startQueue(t, cfg)
			start := time.Now()
			resp, err := http.Get(url + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.wantCode)
			}
			b, err := io.ReadAll(resp.Body)
			switch {
			case tc.wantCut && err == nil:
				t.Errorf("body %q ended cleanly after %v, want a cut stream", b, time.Since(start))
			case tc.wantCut && !errors.Is(err, io.ErrUnexpectedEOF):
				t.Errorf("body error = %v, want io.ErrUnexpectedEOF", err)
			case !tc.wantCut && err != nil:
				t.Errorf("body error = %v", err)
			}
			if tc.wantBody != "" && !strings.HasPrefix(string(b), tc.wantBody) {
				t.Errorf("body = %q, want it to start with %q", b, tc.wantBody)
			}
			if !tc.wantCut && tc.wantBody != "" && string(b) != tc.wantBody {
				t.Errorf("body = %q, want %q", b, tc.wantBody)
			}
			if took := time.Since(start); took > 1500*time.Millisecond {
				t.Errorf("took %v: the timeout did not end the request promptly", took)
			}
		})
	}
}

func TestTimeoutWhileQueuedIs504(t *testing.T) {
	release := make(chan struct{})
	port := startUser(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer close(release)
	cfg := testConfig(port)
	cfg.ContainerConcurrency = 1
	cfg.Timeout = 200 * time.Millisecond
	q, url := startQueue(t, cfg)
	go func() { _, _ = http.Get(url) }() // takes the only slot until its own timeout
	waitFor(t, "the slot taken", func() bool { return q.breaker.InFlight() == 1 })
	if code, _ := get(t, url, nil); code != http.StatusGatewayTimeout {
		t.Errorf("a request that waited in the queue past its timeout got %d, want 504", code)
	}
}
