// Command metrics measures what collecting Prometheus metrics adds to the data plane's
// latency (issue 14: at most 1 % at p99). It starts two gantry servers side by side, each on
// its own data dir, ports, pod bridge and pod range: one with metrics, served on a free port
// as they are by default on 127.0.0.1:9095, and one with --metrics-address "", which leaves
// every part without a registry, so nothing is observed. It deploys the hello image as a
// Knative Service at min-scale 1 on each, warms both, then sends each the same open-loop load
// through its gateway (gateway → activator → queue-proxy → hello): -rate requests a second
// for -duration, round after round, interleaved on, off, off, on, … so that a drift of the
// machine falls on both alike. While the server with metrics is loaded, its /metrics is
// scraped every -scrape, as a Prometheus would. It prints each round's p50 and p99, their
// medians, and the pooled ones, as a Markdown table.
//
// With -control both servers run without metrics: an A/A run, whose difference is the noise
// floor of the comparison (two servers, two pods, one machine).
//
// Both servers run with --kube-proxy=off: the requests reach the pod by its IP, with no
// ClusterIP, and two kube-proxies would share the host's rules. Both run with
// --dashboard=false: the dashboard draws from the parts' metrics, and collects them without
// --metrics-address; it would also be a difference between the two of its own. The load
// generator runs on the same machine.
//
//	make build && go run ./bench/metrics -gantry bin/gantry
//	make build && go run ./bench/metrics -gantry bin/gantry -control
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gantry-run/gantry/bench/internal/load"
	benchserver "github.com/gantry-run/gantry/bench/internal/server"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
)

// The servers' pod networks: off the defaults and off every test's and benchmark's.
var (
	withMetrics    = side{name: "metrics on", bridge: "gantry-m1", podCIDR: "10.251.0.0/16"}
	withoutMetrics = side{name: "metrics off", bridge: "gantry-m2", podCIDR: "10.254.0.0/16", noMetrics: true}
)

var ksvcs = schema.GroupVersionResource{Group: "serving.knative.dev", Version: "v1", Resource: "services"}

type options struct {
	gantry, images string
	rate           int
	duration       time.Duration
	rounds         int
	scrape         time.Duration
	timeout        time.Duration
	control        bool
}

func main() {
	var o options
	flag.StringVar(&o.gantry, "gantry", "bin/gantry", "the gantry binary")
	flag.StringVar(&o.images, "images", "test/images", "directory of the test images (the hello image is built from it)")
	flag.IntVar(&o.rate, "rate", 500, "requests a second, open loop")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long each round loads one server")
	flag.IntVar(&o.rounds, "rounds", 6, "rounds; each loads both servers, in turn")
	flag.DurationVar(&o.scrape, "scrape", 5*time.Second, "how often the server with metrics is scraped while loaded")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "the whole run's limit")
	flag.BoolVar(&o.control, "control", false, "run both servers without metrics (A/A), to see the comparison's noise")
	flag.Parse()
	if err := o.validate(); err != nil {
		fmt.Fprintf(os.Stderr, "metrics: %v\n", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "metrics: %v\n", err)
		os.Exit(1)
	}
}

func (o options) validate() error {
	switch {
	case o.rate < 1 || o.rate > 5000:
		return fmt.Errorf("-rate %d: want 1 to 5000", o.rate)
	case o.duration < time.Second || o.duration > time.Minute:
		return fmt.Errorf("-duration %s: want 1s to 1m", o.duration)
	case o.rounds < 1 || o.rounds > 20:
		return fmt.Errorf("-rounds %d: want 1 to 20", o.rounds)
	case o.scrape < time.Second:
		return fmt.Errorf("-scrape %s: want at least 1s", o.scrape)
	case o.timeout < time.Minute:
		return fmt.Errorf("-timeout %s: want at least 1m", o.timeout)
	}
	return nil
}

// side is one of the two servers.
type side struct {
	name            string
	bridge, podCIDR string
	noMetrics       bool
}

// target is a side's running server and its Service, ready for load.
type target struct {
	side
	srv     *benchserver.Server
	dir     string // the server's data dir
	client  *http.Client
	url     string // the gateway's
	host    string // the Service's
	metrics string // the /metrics URL; empty for the side without
}

func run(ctx context.Context, o options) (err error) {
	var targets []*target
	defer func() {
		for _, t := range targets {
			err = errors.Join(err, t.srv.Stop(), os.RemoveAll(t.dir))
		}
	}()
	first := withMetrics
	if o.control {
		first = side{name: "control, metrics off", bridge: withMetrics.bridge, podCIDR: withMetrics.podCIDR, noMetrics: true}
	}
	for _, s := range []side{first, withoutMetrics} {
		t, err := start(ctx, o, s)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	}
	for _, t := range targets {
		fmt.Fprintf(os.Stderr, "%s: deploying hello …\n", t.name)
		if err := t.deploy(ctx, o.images); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		load.OpenLoop(t.client, t.url, t.host, 200, 2*time.Second) // warm the connections and the path
	}
	on, off := targets[0], targets[1]
	loadBefore := loadAverage()
	var rounds []round
	for i := range o.rounds {
		order := []*target{on, off}
		if i%2 == 1 {
			order = []*target{off, on}
		}
		var r round
		for _, t := range order {
			if err := ctx.Err(); err != nil {
				return err
			}
			res, scrapes := t.measure(o)
			fmt.Fprintf(os.Stderr, "round %d, %s: p50 %s, p99 %s, %d errors, %d scrapes\n", i+1, t.name,
				ms(res.Percentile(.5)), ms(res.Percentile(.99)), res.Errors, scrapes)
			if t == on {
				r.on = res
			} else {
				r.off = res
			}
		}
		rounds = append(rounds, r)
	}
	fmt.Printf("\nhello through the gateway at %d req/s, %s a round, %d rounds interleaved (A, B, B, A, …); /metrics of a server with metrics scraped every %s; load average %s before, %s after\n\n",
		o.rate, o.duration, o.rounds, o.scrape, loadBefore, loadAverage())
	fmt.Print(table(rounds, on.name, off.name))
	return nil
}

// start starts s's server and builds the hello image into its registry.
func start(ctx context.Context, o options, s side) (*target, error) {
	dir, err := os.MkdirTemp("", "gantry-bench-metrics-")
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "%s: starting gantry server …\n", s.name)
	srv, err := benchserver.Start(ctx, benchserver.Options{Bin: o.gantry, DataDir: dir, Bridge: s.bridge, PodCIDR: s.podCIDR,
		NoMetrics: s.noMetrics, KubeProxy: "off", Args: []string{"--dashboard=false"}})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(srv.HTTPPort)
	t := &target{side: s, srv: srv, dir: dir, client: load.NewClient(addr), url: "http://" + addr + "/"}
	if !s.noMetrics {
		t.metrics = "http://" + srv.MetricsAddr() + "/metrics"
	}
	return t, nil
}

// deploy builds the hello image, deploys it as a Service at min-scale 1 and waits until a
// request through the gateway is answered.
func (t *target) deploy(ctx context.Context, images string) error {
	image, err := t.srv.BuildImage(ctx, filepath.Join(images, "hello"), "hello")
	if err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", t.srv.Kubeconfig())
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	svc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "serving.knative.dev/v1",
		"kind":       "Service",
		"metadata":   map[string]any{"name": "hello", "namespace": "default"},
		"spec": map[string]any{"template": map[string]any{
			"metadata": map[string]any{"annotations": map[string]any{
				autoscaling.MinScaleAnnotationKey:     "1",
				autoscaling.InitialScaleAnnotationKey: "1",
			}},
			"spec": map[string]any{"containers": []any{map[string]any{"image": image}}},
		}},
	}}
	services := dyn.Resource(ksvcs).Namespace("default")
	if _, err := services.Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating the Service: %w", err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if ksvc, err := services.Get(ctx, "hello", metav1.GetOptions{}); err == nil {
			if s, _, _ := unstructured.NestedString(ksvc.Object, "status", "url"); s != "" {
				if u, err := url.Parse(s); err == nil {
					t.host = u.Host
				}
			}
		}
		if t.host != "" && load.Do(t.client, t.url, t.host) == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("hello not answering through the gateway within 3m\n%s", tail(t.srv.Output(), 30))
		}
		time.Sleep(time.Second)
	}
}

// measure sends the round's load to t, scraping its metrics meanwhile; it returns what the
// load saw and how many scrapes succeeded.
func (t *target) measure(o options) (load.Result, int) {
	done := make(chan struct{})
	scraped := make(chan int, 1)
	go func() { scraped <- t.scrapeUntil(o.scrape, done) }()
	res := load.OpenLoop(t.client, t.url, t.host, o.rate, o.duration)
	close(done)
	return res, <-scraped
}

// scrapeUntil reads t's /metrics every interval until done; it returns the scrapes that
// succeeded, none for the side without metrics.
func (t *target) scrapeUntil(interval time.Duration, done <-chan struct{}) int {
	if t.metrics == "" {
		<-done
		return 0
	}
	c := &http.Client{Timeout: 10 * time.Second}
	scrape := func() bool {
		resp, err := c.Get(t.metrics)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return err == nil && resp.StatusCode == http.StatusOK
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	n := 0
	for {
		select {
		case <-done:
			return n
		case <-tick.C:
			if scrape() {
				n++
			}
		}
	}
}

// loadAverage is the machine's 1-, 5- and 15-minute load averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
