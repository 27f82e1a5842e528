package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gantry-run/gantry/bench/internal/proc"
	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

var ksvcs = servingv1.SchemeGroupVersion.WithResource("services")

// profileDir is -profile-dir.
var profileDir string

// serverArgs are more flags for gantry server (-server-args); firstTries is how many services
// are called for their first request at each count (-first).
var (
	serverArgs []string
	firstTries int
)

// profiles writes the server's heap profile, its heap profile as text (which ends with Go's
// memory statistics: heap in use, idle, released, stacks) and a 20 s CPU profile, named
// after n.
func (s *server) profiles(ctx context.Context, n int) error {
	if err := os.MkdirAll(profileDir, 0o755); err != nil {
		return err
	}
	for name, path := range map[string]string{"heap": "/debug/pprof/heap", "heap-text": "/debug/pprof/heap?debug=1", "cpu": "/debug/pprof/profile?seconds=20"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.MetricsAddr()+path, nil)
		if err != nil {
			return err
		}
		resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
		if err != nil {
			return fmt.Errorf("%s profile: %w", name, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		ext := ".pprof"
		if name == "heap-text" {
			ext = ".txt"
		}
		file := filepath.Join(profileDir, fmt.Sprintf("%s-%d%s", name, n, ext))
		if err := os.WriteFile(file, b, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", file)
	}
	return nil
}

// serviceResult is the server at one count of Knative Services scaled to zero.
type serviceResult struct {
	services   int
	cpuPercent float64
	rssMB      int64
	// anonMB and fileMB split rssMB: anonymous memory (Go's heap and stacks) and mapped file
	// pages (the binary's text, etcd's database).
	anonMB, fileMB int64
	writes         float64
	firstOK        int
	firstTried     int
	firstP50       time.Duration
}

// measureServices creates Knative Services at zero (initial-scale 0, so none ever ran a pod)
// up to each count, waits until every one is Ready, lets the server settle, and measures its
// CPU and memory; then it calls a sample of them once each, as their first request.
func measureServices(ctx context.Context, srv *server, client kubernetes.Interface, dyn dynamic.Interface, ref string, counts []int, settle, measure time.Duration) ([]serviceResult, error) {
	cms := client.CoreV1().ConfigMaps(config.Namespace)
	cm, err := cms.Get(ctx, config.AutoscalerConfigName, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data["allow-zero-initial-scale"] = "true"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second) // the webhook's configuration follows the ConfigMap by watch

	var out []serviceResult
	have := 0
	for _, n := range counts {
		fmt.Fprintf(os.Stderr, "%d services at zero …\n", n)
		began := time.Now()
		if err := createServices(ctx, dyn, ref, have, n); err != nil {
			return nil, err
		}
		have = n
		if err := waitServicesReady(ctx, dyn, n, 2*time.Minute+time.Duration(n)*500*time.Millisecond); err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "%d services Ready after %s\n", n, time.Since(began).Round(time.Second))
		time.Sleep(settle)
		r, err := srv.measure(ctx, client, measure)
		if err != nil {
			return nil, err
		}
		pid := srv.Cmd.Process.Pid
		sr := serviceResult{services: n, cpuPercent: r.cpuPercent, writes: r.writes,
			rssMB: proc.RSS(pid) >> 20, anonMB: proc.RSSAnon(pid) >> 20, fileMB: proc.RSSFile(pid) >> 20}
		if profileDir != "" {
			if err := srv.profiles(ctx, n); err != nil {
				return nil, err
			}
		}
		sr.firstOK, sr.firstTried, sr.firstP50 = firstRequests(srv.HTTPPort, n, firstTries)
		fmt.Fprintf(os.Stderr, "%d services: %.1f %% of one core, %d MB (%d MB anonymous, %d MB files); first requests %d/%d\n",
			n, sr.cpuPercent, sr.rssMB, sr.anonMB, sr.fileMB, sr.firstOK, sr.firstTried)
		out = append(out, sr)
	}
	return out, nil
}

func serviceName(i int) string { return fmt.Sprintf("s%04d", i) }

// createServices creates services from .. to-1, a few at once.
func createServices(ctx context.Context, dyn dynamic.Interface, ref string, from, to int) error {
	next := atomic.Int64{}
	next.Store(int64(from))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				svc := &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": servingv1.SchemeGroupVersion.String(),
					"kind":       "Service",
					"metadata":   map[string]any{"name": serviceName(i), "namespace": ns},
					"spec": map[string]any{"template": map[string]any{
						"metadata": map[string]any{"annotations": map[string]any{"autoscaling.knative.dev/initial-scale": "0"}},
						"spec":     map[string]any{"containers": []any{map[string]any{"image": ref}}},
					}},
				}}
				for attempt := 0; ; attempt++ {
					_, err := dyn.Resource(ksvcs).Namespace(ns).Create(ctx, svc, metav1.CreateOptions{})
					if err == nil || apierrors.IsAlreadyExists(err) {
						break
					}
					if attempt == 5 {
						errs <- fmt.Errorf("creating service %s: %w", serviceName(i), err)
						return
					}
					time.Sleep(time.Second)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func waitServicesReady(ctx context.Context, dyn dynamic.Interface, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	ready := 0
	for time.Now().Before(deadline) {
		list, err := dyn.Resource(ksvcs).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			ready = 0
			for _, s := range list.Items {
				conds, _, _ := unstructured.NestedSlice(s.Object, "status", "conditions")
				for _, c := range conds {
					if m, ok := c.(map[string]any); ok && m["type"] == "Ready" && m["status"] == "True" {
						ready++
					}
				}
			}
			if ready >= n {
				return nil
			}
		}
		time.Sleep(2 * time.Second)
	}
	return fmt.Errorf("%d of %d services Ready after %s", ready, n, timeout)
}

// firstRequests calls k random services of n once each through the gateway and returns how
// many answered 200 and the median time to the full answer.
func firstRequests(httpPort, n, k int) (ok, tried int, p50 time.Duration) {
	c := &http.Client{Timeout: time.Minute}
	var took []time.Duration
	for _, i := range rand.Perm(n)[:min(k, n)] {
		tried++
		req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(httpPort)+"/", nil)
		req.Host = serviceName(i) + "." + ns + ".localhost"
		began := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			ok++
			took = append(took, time.Since(began))
		}
	}
	if len(took) > 0 {
		slices.Sort(took)
		p50 = took[len(took)/2]
	}
	return ok, tried, p50
}

// runServices starts one server and measures it at each count of services.
func runServices(ctx context.Context, bin, countsFlag, images string, settle, measure time.Duration) (err error) {
	var counts []int
	for _, f := range strings.Split(countsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 5000 || (len(counts) > 0 && n < counts[len(counts)-1]) {
			return fmt.Errorf("-services %q: want ascending counts between 1 and 5000", countsFlag)
		}
		counts = append(counts, n)
	}
	dir, err := os.MkdirTemp("", "gantry-bench-services-")
	if err != nil {
		return err
	}
	srv, err := start(ctx, bin, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return err
	}
	defer func() { err = errors.Join(err, srv.Stop(), os.RemoveAll(dir)) }()
	ref := fmt.Sprintf("127.0.0.1:%d/hello", srv.RegistryPort)
	if out, err := exec.CommandContext(ctx, bin, "image", "build", filepath.Join(images, "hello"), ref).CombinedOutput(); err != nil {
		return fmt.Errorf("building the hello image: %w\n%s", err, out)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "kubeconfig.yaml"))
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 200, 400
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := prepareNamespace(ctx, client); err != nil {
		return err
	}
	res, err := measureServices(ctx, srv, client, dyn, ref, counts, settle, measure)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "services at zero\tCPU (% of one core)\tRSS\tof which anonymous / files\tall API writes/min\tfirst requests 200\tfirst request p50\t")
	for _, r := range res {
		fmt.Fprintf(tw, "%d\t%.1f %%\t%d MB\t%d / %d MB\t%s\t%d/%d\t%s\t\n", r.services, r.cpuPercent, r.rssMB, r.anonMB, r.fileMB, perMin(r.writes, measure), r.firstOK, r.firstTried, r.firstP50.Round(time.Millisecond))
	}
	_ = tw.Flush()
	fmt.Printf("\nCPU and RSS of the gantry server process over %s after %s of settling; 2 cores shared with other work\n", measure, settle)
	return nil
}
