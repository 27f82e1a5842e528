// Command failing is the test image for a container that dies: it serves requests, then
// exits with code 5 after $DELAY (a Go duration such as "5s", or whole seconds; default 5s).
// SIGTERM before then shuts it down cleanly with code 0.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/gantry-run/gantry/test/images/internal/serve"
)

// exitCode is what the process exits with when the delay runs out.
const exitCode = 5

func main() {
	delay, err := parseDelay(os.Getenv("DELAY"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "failing: DELAY: %v\n", err)
		os.Exit(2)
	}
	sigCtx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(sigCtx, delay)
	defer cancel()

	if err := serve.Run(ctx, "failing", ":"+serve.Port(), http.HandlerFunc(handle)); err != nil {
		fmt.Fprintf(os.Stderr, "failing: %v\n", err)
		os.Exit(1)
	}
	if sigCtx.Err() == nil {
		fmt.Printf("failing: exiting with code %d after %s\n", exitCode, delay)
		os.Exit(exitCode)
	}
}

func handle(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprintln(w, "still alive")
}

// parseDelay reads DELAY: empty is 5s; a bare integer is seconds; otherwise a Go duration.
func parseDelay(s string) (time.Duration, error) {
	if s == "" {
		return 5 * time.Second, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("must not be negative, got %q", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("must be a duration such as 5s or whole seconds, got %q", s)
	}
	return d, nil
}
