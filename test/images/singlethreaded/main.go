// Command singlethreaded is the test image for containerConcurrency: 1. Each request holds
// the server for ?sleep=<ms> (default 200); a request that arrives while another is in
// flight gets 500, so a test sees at once when the platform overlaps requests.
package main

import (
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gantry-run/gantry/test/images/internal/serve"
)

const maxSleep = 10 * time.Minute

func main() {
	serve.Main("singlethreaded", &handler{})
}

type handler struct {
	inFlight atomic.Int32
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.inFlight.Add(1) > 1 {
		h.inFlight.Add(-1)
		http.Error(w, "concurrent request detected", http.StatusInternalServerError)
		return
	}
	defer h.inFlight.Add(-1)

	d := 200 * time.Millisecond
	if s := r.URL.Query().Get("sleep"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 || time.Duration(n)*time.Millisecond > maxSleep {
			http.Error(w, fmt.Sprintf("sleep: must be between 0 and %d milliseconds, got %q", maxSleep.Milliseconds(), s), http.StatusBadRequest)
			return
		}
		d = time.Duration(n) * time.Millisecond
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		return
	}
	fmt.Fprintln(w, "ok")
}
