package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// requestTimeout bounds one request; a request that takes longer counts as failed.
const requestTimeout = 30 * time.Second

// newClient keeps a connection per worker and connects to the gateway at addr whatever the
// URL's host says (the Host header names the Service).
func newClient(addr string, workers int) *http.Client {
	return &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			MaxIdleConns:        workers,
			MaxIdleConnsPerHost: workers,
			DisableCompression:  true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			},
		},
	}
}

// drive plays the shape against url: a closed loop whose worker i sends one request after
// another while the shape wants more than i requests in flight, and idles otherwise. It stops
// at the shape's end, or once maxRequests have been sent, or when ctx ends. began is the
// shape's time zero. It returns every request and a count of the failures by kind.
func drive(ctx context.Context, c *http.Client, url, host string, sh shape, began time.Time, maxRequests int) ([]request, map[string]int) {
	var (
		mu       sync.Mutex
		reqs     []request
		failures = map[string]int{}
		sent     atomic.Int64
		wg       sync.WaitGroup
	)
	end := began.Add(sh.duration())
	for i := range sh.peak() {
		wg.Go(func() {
			for ctx.Err() == nil {
				now := time.Now()
				if !now.Before(end) {
					return
				}
				if i >= sh.concurrency(now.Sub(began)) {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				if sent.Add(1) > int64(maxRequests) {
					return
				}
				err := get(ctx, c, url, host)
				r := request{start: now.Sub(began), took: time.Since(now), ok: err == nil}
				mu.Lock()
				reqs = append(reqs, r)
				if err != nil {
					failures[err.Error()]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return reqs, failures
}

// get sends one GET and reads the whole answer; anything but 200 is an error.
func get(ctx context.Context, c *http.Client, url, host string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return err
}
