// Command timeout is the test image for request timeouts: ?initialTimeout=<ms> waits before
// writing the response headers, then ?timeout=<ms> streams the body slowly, one byte per
// ?interval=<ms> (default 100), flushing each, and ends with a newline.
package main

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gantry-run/gantry/test/images/internal/serve"
)

const maxWait = 30 * time.Minute

func main() {
	serve.Main("timeout", http.HandlerFunc(handle))
}

func handle(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	initial, err := msParam(q.Get("initialTimeout"), 0)
	if err != nil {
		http.Error(w, "initialTimeout: "+err.Error(), http.StatusBadRequest)
		return
	}
	total, err := msParam(q.Get("timeout"), 0)
	if err != nil {
		http.Error(w, "timeout: "+err.Error(), http.StatusBadRequest)
		return
	}
	interval, err := msParam(q.Get("interval"), 100*time.Millisecond)
	if err != nil || interval <= 0 {
		http.Error(w, "interval: must be a positive number of milliseconds", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	if !sleep(r, initial) {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	flush(w)
	deadline := time.Now().Add(total)
	for time.Now().Before(deadline) {
		if _, err := w.Write([]byte{'.'}); err != nil {
			return
		}
		flush(w)
		if !sleep(r, min(interval, time.Until(deadline))) {
			return
		}
	}
	if ctx.Err() == nil {
		_, _ = w.Write([]byte{'\n'})
	}
}

func flush(w http.ResponseWriter) {
	_ = http.NewResponseController(w).Flush()
}

// sleep waits d or until the request ends; it reports whether the request is still alive.
func sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return r.Context().Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// msParam parses a number of milliseconds; empty means def.
func msParam(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("must be an integer number of milliseconds, got %q", s)
	}
	d := time.Duration(n) * time.Millisecond
	if n < 0 || d > maxWait {
		return 0, fmt.Errorf("must be between 0 and %d, got %d", maxWait.Milliseconds(), n)
	}
	return d, nil
}
