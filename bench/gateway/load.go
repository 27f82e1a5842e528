package gateway

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

// result is what one load run saw.
type result struct {
	latencies []time.Duration // of the successful requests
	errors    int
	elapsed   time.Duration
}

func (r result) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	s := slices.Clone(r.latencies)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func (r result) rate() float64 { return float64(len(r.latencies)) / r.elapsed.Seconds() }

// newClient keeps enough idle connections for the load, so the generator does not dial per
// request, and connects to addr whatever the URL's host says (the Host header carries it).
func newClient(addr string) *http.Client {
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

func do(c *http.Client, url, host string) error {
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

// openLoop sends rate requests per second for d, each on schedule whether or not earlier
// ones have answered (no coordinated omission), at most maxInFlight at once.
func openLoop(c *http.Client, url, host string, rate int, d time.Duration) result {
	const maxInFlight = 4000
	interval := time.Second / time.Duration(rate)
	total := int(d / interval)
	var mu sync.Mutex
	var res result
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range total {
		due := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(due))
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := do(c, url, host)
			took := time.Since(due)
			mu.Lock()
			if err != nil {
				res.errors++
			} else {
				res.latencies = append(res.latencies, took)
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// closedLoop keeps workers requests in flight for d, as fast as they are answered.
func closedLoop(c *http.Client, url, host string, workers int, d time.Duration) result {
	var ok, failed atomic.Int64
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if do(c, url, host) != nil {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return result{latencies: make([]time.Duration, ok.Load()), errors: int(failed.Load()), elapsed: time.Since(start)}
}
