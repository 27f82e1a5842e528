// Command replay plays three shapes of load against one Knative Service and records, each
// second, how the autoscaler follows it: the pods it wants (the PodAutoscaler's desired
// scale), the pods ready (the Deployment's ready replicas), the requests sent, answered and
// failed, and the p50 and p99 latency of the requests begun in that second.
//
// It starts gantry server itself (its own data dir, ports, pod bridge gantry-h5 and pod range
// 10.253.0.0/16), builds the autoscale test image, deploys it with containerConcurrency and
// target -target, a short stable window and min/max-scale by annotation, then plays, one
// after the other and each from min-scale:
//
//   - step: 0 → -concurrency requests in flight at once, held -hold;
//   - ramp: 0 → -concurrency rising evenly over -hold, held 10 s;
//   - burst: -burst-base in flight, a -spike long spike to -burst, back to -burst-base;
//
// each followed by -tail of quiet to watch the scale fall. The load is a closed loop through
// the gateway (each in-flight slot sends its next request when the last one answers), bounded
// by -max-requests per shape and by the shape's length. It writes replay.csv and a PNG per
// shape into -out and prints a Markdown summary table.
//
//	make build && go run ./bench/replay -gantry bin/gantry -out docs/benchmarks
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	benchserver "github.com/gantry-run/gantry/bench/internal/server"
	"github.com/gantry-run/gantry/internal/qpbin"
)

// The server's pod network: off the defaults and off every test's and benchmark's.
const (
	bridge  = "gantry-h5"
	podCIDR = "10.253.0.0/16"
)

type options struct {
	gantry, images, out string
	shapes              []string
	shape               shapeOptions
	settings            settings
	sleep               time.Duration
	maxRequests         int
	timeout             time.Duration
}

func main() {
	var o options
	var shapeList string
	flag.StringVar(&o.gantry, "gantry", "bin/gantry", "the gantry binary")
	flag.StringVar(&o.images, "images", "test/images", "directory of the test images (the autoscale image is built from it)")
	flag.StringVar(&o.out, "out", ".", "directory for replay.csv and replay-<shape>.png")
	flag.StringVar(&shapeList, "shapes", "step,ramp,burst", "comma-separated shapes to play, in order: step, ramp, burst")
	flag.IntVar(&o.shape.concurrency, "concurrency", 50, "requests in flight at the step's and the ramp's top")
	flag.IntVar(&o.shape.burst, "burst", 100, "requests in flight at the burst's spike")
	flag.IntVar(&o.shape.base, "burst-base", 10, "requests in flight before and after the burst's spike")
	flag.DurationVar(&o.shape.hold, "hold", 60*time.Second, "how long the step holds and the ramp rises")
	flag.DurationVar(&o.shape.spike, "spike", 10*time.Second, "how long the burst's spike lasts")
	flag.DurationVar(&o.shape.tail, "tail", 40*time.Second, "quiet at the end of each shape, to watch the scale fall")
	flag.IntVar(&o.settings.target, "target", 10, "requests in flight per pod: the target annotation and containerConcurrency")
	flag.DurationVar(&o.settings.window, "window", 10*time.Second, "the stable window annotation (6s to 1h); the panic window is 10 % of it, at least 1 s")
	flag.IntVar(&o.settings.minScale, "min-scale", 1, "the min-scale annotation: where each shape starts from")
	flag.IntVar(&o.settings.maxScale, "max-scale", 8, "the max-scale annotation")
	flag.DurationVar(&o.sleep, "sleep", 100*time.Millisecond, "how long the app takes per request (the autoscale image's ?sleep=)")
	flag.IntVar(&o.maxRequests, "max-requests", 100_000, "at most this many requests per shape")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "the whole run's limit")
	flag.Parse()
	o.shapes = strings.Split(shapeList, ",")
	if err := o.validate(); err != nil {
		fmt.Fprintf(os.Stderr, "replay: %v\n", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "replay: %v\n", err)
		os.Exit(1)
	}
}

func (o options) validate() error {
	known := shapes(o.shape)
	for _, s := range o.shapes {
		if _, ok := known[s]; !ok {
			return fmt.Errorf("-shapes: unknown shape %q (want %s)", s, strings.Join(slices.Sorted(maps.Keys(known)), ", "))
		}
	}
	s := o.settings
	switch {
	case s.target < 1 || s.target > 1000:
		return fmt.Errorf("-target %d: want 1 to 1000", s.target)
	case s.window < 6*time.Second || s.window > time.Hour:
		return fmt.Errorf("-window %s: want 6s to 1h, Knative's bounds", s.window)
	case s.minScale < 1:
		return fmt.Errorf("-min-scale %d: want at least 1 (each shape starts from min-scale pods)", s.minScale)
	case s.maxScale < s.minScale || s.maxScale > 50:
		return fmt.Errorf("-max-scale %d: want -min-scale (%d) to 50", s.maxScale, s.minScale)
	case o.sleep < 0 || o.sleep > 10*time.Second:
		return fmt.Errorf("-sleep %s: want 0 to 10s", o.sleep)
	case o.maxRequests < 1 || o.maxRequests > 1_000_000:
		return fmt.Errorf("-max-requests %d: want 1 to 1000000", o.maxRequests)
	}
	// The node runs the queue-proxy from this binary inside the pod's empty root.
	if err := qpbin.CheckExecutable(o.gantry); err != nil {
		return fmt.Errorf("-gantry: %w", err)
	}
	if st, err := os.Stat(o.out); err != nil || !st.IsDir() {
		return fmt.Errorf("-out %s: not a directory", o.out)
	}
	return o.shape.validate()
}

func run(ctx context.Context, o options) (err error) {
	dir, err := os.MkdirTemp("", "gantry-bench-replay-")
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "starting gantry server …")
	srv, err := benchserver.Start(ctx, benchserver.Options{Bin: o.gantry, DataDir: dir, Bridge: bridge, PodCIDR: podCIDR})
	if err != nil {
		_ = os.RemoveAll(dir)
		return err
	}
	defer func() { err = errors.Join(err, srv.Stop(), os.RemoveAll(dir)) }()
	image, err := srv.BuildImage(ctx, filepath.Join(o.images, "autoscale"), "autoscale")
	if err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", srv.Kubeconfig())
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 50, 100
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	c := cluster{client: client, dyn: dyn, metrics: "http://" + srv.MetricsAddr() + "/metrics"}
	fmt.Fprintln(os.Stderr, "deploying the autoscale Service …")
	if err := c.deploy(ctx, image, o.settings); err != nil {
		return fmt.Errorf("%w\n%s", err, tail(srv.Output(), 40))
	}

	all := shapes(o.shape)
	hc := newClient("127.0.0.1:"+strconv.Itoa(srv.HTTPPort), max(o.shape.concurrency, o.shape.burst))
	url := fmt.Sprintf("http://%s/?sleep=%d", serviceHostName, o.sleep.Milliseconds())
	runs := map[string][]second{}
	var sums []summary
	for _, name := range o.shapes {
		sh := all[name]
		if err := c.settle(ctx, o.settings.minScale); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "%s: %s, %s …\n", name, sh.about, sh.duration())
		began := time.Now()
		stop := make(chan struct{})
		sampled := make(chan []scale, 1)
		go func() { sampled <- c.sample(ctx, began, stop) }()
		reqs, failures := drive(ctx, hc, url, serviceHostName, sh, began, o.maxRequests)
		// The sampler goes on to the shape's end even when the requests ran out early.
		time.Sleep(time.Until(began.Add(sh.duration())))
		close(stop)
		samples := <-sampled
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		secs := perSecond(sh, reqs, samples, int(sh.duration()/time.Second))
		runs[name] = secs
		s := summarize(sh, secs, reqs, o.settings.target, o.settings.maxScale)
		sums = append(sums, s)
		fmt.Fprintf(os.Stderr, "%s: %d requests, %d failed, max %d pods desired, %d ready\n", name, s.sent, s.failed, s.maxDesired, s.maxReady)
		for msg, n := range failures {
			fmt.Fprintf(os.Stderr, "%s: %d× %s\n", name, n, msg)
		}
		title := fmt.Sprintf("%s: %s (target %d per pod, max-scale %d)", name, sh.about, o.settings.target, o.settings.maxScale)
		png := filepath.Join(o.out, "replay-"+name+".png")
		if err := renderPNG(png, title, secs, o.settings.target, o.settings.maxScale); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "%s: wrote %s\n", name, png)
	}
	f, err := os.Create(filepath.Join(o.out, "replay.csv"))
	if err != nil {
		return err
	}
	if err := errors.Join(writeCSV(f, o.shapes, runs), f.Close()); err != nil {
		return err
	}
	if err := writeTable(os.Stdout, sums); err != nil {
		return err
	}
	fmt.Printf("\ntarget %d in flight per pod (containerConcurrency %d, utilization 100 %%), stable window %s, min-scale %d, max-scale %d; ?sleep=%s; times from when the load calls for the pods to the first once-a-second reading that shows them\n",
		o.settings.target, o.settings.target, o.settings.window, o.settings.minScale, o.settings.maxScale, o.sleep)
	return nil
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
