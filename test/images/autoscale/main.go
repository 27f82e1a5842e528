// Command autoscale is the test image that loads a revision on demand, like Knative's
// autoscale image: ?sleep=<ms> sleeps, ?prime=<n> computes the largest prime ≤ n with a
// sieve (CPU), and ?bloat=<MB> allocates and touches that many megabytes (memory, so a
// memory limit OOM-kills it). Parameters combine and run in that order.
package main

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gantry-run/gantry/test/images/internal/serve"
)

// Bounds on the parameters, so a typo cannot wedge the test machine.
const (
	maxSleep = 10 * time.Minute
	maxPrime = 200_000_000
	maxBloat = 64 << 10 // MB
)

func main() {
	serve.Main("autoscale", http.HandlerFunc(handle))
}

func handle(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sleepMS, err := intParam(q.Get("sleep"), int64(maxSleep/time.Millisecond))
	if err != nil {
		http.Error(w, "sleep: "+err.Error(), http.StatusBadRequest)
		return
	}
	prime, err := intParam(q.Get("prime"), maxPrime)
	if err != nil {
		http.Error(w, "prime: "+err.Error(), http.StatusBadRequest)
		return
	}
	bloat, err := intParam(q.Get("bloat"), maxBloat)
	if err != nil {
		http.Error(w, "bloat: "+err.Error(), http.StatusBadRequest)
		return
	}

	var out []string
	if sleepMS > 0 {
		start := time.Now()
		t := time.NewTimer(time.Duration(sleepMS) * time.Millisecond)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
		out = append(out, fmt.Sprintf("Slept for %d milliseconds.", time.Since(start).Milliseconds()))
	}
	if prime > 0 {
		if p, ok := largestPrime(int(prime)); ok {
			out = append(out, fmt.Sprintf("The largest prime less than or equal to %d is %d.", prime, p))
		} else {
			out = append(out, fmt.Sprintf("There are no primes less than or equal to %d.", prime))
		}
	}
	if bloat > 0 {
		b := bloatMB(int(bloat))
		out = append(out, fmt.Sprintf("Allocated %d MB.", len(b)>>20))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, line := range out {
		fmt.Fprintln(w, line)
	}
}

// intParam parses a non-negative integer query parameter; empty means 0.
func intParam(s string, limit int64) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("must be an integer, got %q", s)
	}
	if n < 0 || n > limit {
		return 0, fmt.Errorf("must be between 0 and %d, got %d", limit, n)
	}
	return n, nil
}

// largestPrime sieves [2, n] and returns its largest prime.
func largestPrime(n int) (int, bool) {
	if n < 2 {
		return 0, false
	}
	composite := make([]bool, n+1)
	for i := 2; i*i <= n; i++ {
		if composite[i] {
			continue
		}
		for j := i * i; j <= n; j += i {
			composite[j] = true
		}
	}
	for i := n; i >= 2; i-- {
		if !composite[i] {
			return i, true
		}
	}
	return 0, false
}

// bloatMB allocates mb megabytes and writes to every page, so the memory is resident.
func bloatMB(mb int) []byte {
	b := make([]byte, mb<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	return b
}
