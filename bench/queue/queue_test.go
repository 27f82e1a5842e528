// Package queue benchmarks the queue-proxy's cost per request, side by side in one run: a
// hello handler (as test/images/hello) served on loopback and called straight, through the
// pass-through proxy the queue-proxy used to be, and through the queue-proxy's whole handler
// chain (queue.New + Serve, as `gantry queue-proxy` runs it) with containerConcurrency 0 and
// 10. Client, proxy and user container share this process, so allocs/op and cpu-µs/op count
// all three: the queue-proxy's cost is the difference to "direct".
//
//	go test ./bench/queue -run '^$' -bench . -benchtime 2s
//
// BenchmarkSerial sends one request at a time (ns/op is the round trip). BenchmarkConcurrent
// keeps 50 requests in flight, as wrk -t2 -c50 does, and reports req/s and the p50 and p99
// latency. On a machine shared with other work req/s moves with the neighbours' load;
// cpu-µs/op (this process's CPU time per request) moves much less.
package queue

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantry-run/gantry/internal/proccpu"
	"github.com/gantry-run/gantry/internal/queue"
)

// concurrency is the number of requests BenchmarkConcurrent keeps in flight.
const concurrency = 50

// hello answers as test/images/hello does.
var hello = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Hello %s!\n", "World")
})

type target struct {
	name string
	url  string
}

// targets starts the user container and the proxies in front of it; stop ends them.
func targets(b *testing.B) (ts []target, stop func()) {
	b.Helper()
	var stops []func()
	stop = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	userL := listen(b)
	user := &http.Server{Handler: hello, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = user.Serve(userL) }()
	stops = append(stops, func() { _ = user.Close() })
	userPort := userL.Addr().(*net.TCPAddr).Port
	ts = append(ts, target{"direct", "http://" + userL.Addr().String() + "/"})

	// The pass-through the queue-proxy was before this benchmark's issue.
	passL := listen(b)
	pass := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: userL.Addr().String()})
	pass.Transport = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 100,
		IdleConnTimeout:     90 * time.Second,
	}
	passSrv := &http.Server{Handler: pass, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = passSrv.Serve(passL) }()
	stops = append(stops, func() { _ = passSrv.Close() })
	ts = append(ts, target{"passthrough", "http://" + passL.Addr().String() + "/"})

	for _, cc := range []int{0, 10} {
		cfg := queue.Config{UserPort: userPort, ContainerConcurrency: cc, Timeout: 300 * time.Second,
			QuietPeriod: time.Millisecond, DrainTimeout: 5 * time.Second, Namespace: "default", Revision: "hello-00001", Pod: "bench"}
		q, err := queue.New(cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		l := listen(b)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- q.Serve(ctx, queue.Listeners{Serving: l}) }()
		stops = append(stops, func() { cancel(); <-done })
		ts = append(ts, target{"queue-cc" + strconv.Itoa(cc), "http://" + l.Addr().String() + "/"})
	}
	return ts, stop
}

func listen(b *testing.B) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// client is what a load generator looks like: keep-alive connections, enough of them.
func client() *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        2 * concurrency,
		MaxIdleConnsPerHost: 2 * concurrency,
		DisableCompression:  true,
	}}
}

func call(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func BenchmarkSerial(b *testing.B) {
	ts, stop := targets(b)
	defer stop()
	for _, t := range ts {
		b.Run(t.name, func(b *testing.B) {
			c := client()
			defer c.CloseIdleConnections()
			if err := call(c, t.url); err != nil { // warm the connections
				b.Fatal(err)
			}
			b.ReportAllocs()
			cpu := proccpu.Used()
			b.ResetTimer()
			for b.Loop() {
				if err := call(c, t.url); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(proccpu.Used()-cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
		})
	}
}

func BenchmarkConcurrent(b *testing.B) {
	ts, stop := targets(b)
	defer stop()
	for _, t := range ts {
		b.Run(t.name, func(b *testing.B) {
			c := client()
			defer c.CloseIdleConnections()
			if err := call(c, t.url); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			// RunParallel starts parallelism × GOMAXPROCS goroutines.
			b.SetParallelism((concurrency + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			var failed atomic.Int64
			var firstErr atomic.Value
			var mu sync.Mutex
			var latencies []time.Duration
			cpu, start := proccpu.Used(), time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					t0 := time.Now()
					if err := call(c, t.url); err != nil {
						if failed.Add(1) == 1 {
							firstErr.Store(err)
						}
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				latencies = append(latencies, mine...)
				mu.Unlock()
			})
			b.StopTimer()
			elapsed := time.Since(start)
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d of %d requests failed, the first: %v", n, b.N, firstErr.Load())
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
			b.ReportMetric(float64(proccpu.Used()-cpu)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
			slices.Sort(latencies)
			for _, p := range []int{50, 99} {
				b.ReportMetric(float64(latencies[(len(latencies)-1)*p/100])/float64(time.Microsecond), "p"+strconv.Itoa(p)+"-µs")
			}
		})
	}
}
