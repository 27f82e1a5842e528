// Command readiness is the test image for probes. GET /readyz answers 200 once $READY_DELAY
// has passed since start (default 0) and 503 before; GET /healthz answers 200 until
// $LIVENESS_FAIL_AFTER has passed (default: never fails) and 500 after. POST
// /toggle?probe=readiness|liveness (default readiness) inverts that probe's answer from then
// on; a second toggle restores it. Other paths answer 200 with the current state.
package main

import (
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/gantry-run/gantry/test/images/internal/serve"
)

type handler struct {
	now             func() time.Time
	start           time.Time
	readyDelay      time.Duration
	livenessFailAge time.Duration // 0: never fails

	mu           sync.Mutex
	readyFlip    bool
	livenessFlip bool
}

func main() {
	readyDelay, err := envDuration("READY_DELAY")
	if err != nil {
		fmt.Fprintf(os.Stderr, "readiness: %v\n", err)
		os.Exit(2)
	}
	failAfter, err := envDuration("LIVENESS_FAIL_AFTER")
	if err != nil {
		fmt.Fprintf(os.Stderr, "readiness: %v\n", err)
		os.Exit(2)
	}
	serve.Main("readiness", newHandler(time.Now, readyDelay, failAfter))
}

func newHandler(now func() time.Time, readyDelay, livenessFailAfter time.Duration) *handler {
	return &handler{now: now, start: now(), readyDelay: readyDelay, livenessFailAge: livenessFailAfter}
}

func (h *handler) state() (ready, live bool) {
	age := h.now().Sub(h.start)
	ready = age >= h.readyDelay
	live = h.livenessFailAge == 0 || age < h.livenessFailAge
	h.mu.Lock()
	defer h.mu.Unlock()
	return ready != h.readyFlip, live != h.livenessFlip
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ready, live := h.state()
	switch r.URL.Path {
	case "/readyz":
		if !ready {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	case "/healthz":
		if !live {
			http.Error(w, "not live", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "live")
	case "/toggle":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "toggle needs POST", http.StatusMethodNotAllowed)
			return
		}
		h.mu.Lock()
		switch probe := r.URL.Query().Get("probe"); probe {
		case "", "readiness":
			h.readyFlip = !h.readyFlip
		case "liveness":
			h.livenessFlip = !h.livenessFlip
		default:
			h.mu.Unlock()
			http.Error(w, fmt.Sprintf("probe: must be readiness or liveness, got %q", probe), http.StatusBadRequest)
			return
		}
		h.mu.Unlock()
		ready, live = h.state()
		fmt.Fprintf(w, "ready=%t live=%t\n", ready, live)
	default:
		fmt.Fprintf(w, "ready=%t live=%t\n", ready, live)
	}
}

func envDuration(key string) (time.Duration, error) {
	s := os.Getenv(key)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s: must be a non-negative duration such as 5s, got %q", key, s)
	}
	return d, nil
}
