// Package load drives HTTP load for the benchmarks: an open loop at a fixed rate (no
// coordinated omission) and a closed loop of workers, against one address whatever the URL's
// host says (the Host header names the Service).
package load

import (
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Result is what one load run saw.
type Result struct {
	Latencies []time.Duration // of the successful requests
	Errors    int
	Elapsed   time.Duration
}

// Percentile is the p-quantile (0 < p < 1) of the successful requests' latencies.
func (r Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	s := slices.Clone(r.Latencies)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// Rate is the successful requests per second.
func (r Result) Rate() float64 { return float64(len(r.Latencies)) / r.Elapsed.Seconds() }

// NewClient keeps enough idle connections for the load, so the generator does not dial per
// request, and connects to addr whatever the URL's host says (the Host header carries it).
func NewClient(addr string) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        2000,
			MaxIdleConnsPerHost: 2000,
			DisableCompression:  true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		},
	}
}

// Do sends a GET of url with host as its Host header and reads the whole answer; a status
// other than 200 is an error.
func Do(c *http.Client, url, host string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &statusError{resp.StatusCode}
	}
	return nil
}

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }

// OpenLoop sends rate requests per second for d, each on schedule whether or not earlier
// ones have answered (no coordinated omission), at most maxInFlight at once.
func OpenLoop(c *http.Client, url, host string, rate int, d time.Duration) Result {
	const maxInFlight = 4000
	interval := time.Second / time.Duration(rate)
	total := int(d / interval)
	var mu sync.Mutex
	var res Result
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due))
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := Do(c, url, host)
			took := time.Since(due)
			mu.Lock()
			if err != nil {
				res.Errors++
			} else {
				res.Latencies = append(res.Latencies, took)
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res
}

// ClosedLoop keeps workers requests in flight for d, as fast as they are answered.
func ClosedLoop(c *http.Client, url, host string, workers int, d time.Duration) Result {
	var ok, failed atomic.Int64
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if Do(c, url, host) != nil {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return Result{Latencies: make([]time.Duration, ok.Load()), Errors: int(failed.Load()), Elapsed: time.Since(start)}
}
