// Command idle measures what idle pods cost: it starts gantry server (with the serverless
// node) on a temporary data directory, its own ports, bridge and pod range, then for each pod
// count in -pods creates that many pods (in addition to those already there), waits until every
// one is Ready, lets the server settle, and reads the server process's CPU time
// (utime+stime from /proc/<pid>/stat) over -measure. With -baseline it does the same for a
// second binary, one after the other, and prints both side by side. It also reads the API
// server's request counters over the same window, so a change in CPU can be told apart from a
// change in API writes.
//
// Pods are shaped like a Knative revision's (-shape revision: the pod template the revision
// reconciler builds, the hello user container and the queue-proxy sidecar with its readiness
// probe) or plain (-shape plain: the hello container with an HTTP readiness probe at the
// default period of 10 s).
//
// With -services it measures Knative Services scaled to zero instead: it creates that many
// Services at zero (initial-scale 0), waits until all are Ready, measures the server's CPU and
// resident memory the same way, then calls five of them at random as their first request.
//
//	make build && go run ./bench/idle -gantry bin/gantry -baseline /tmp/baseline-gantry -pods 0,30,100
//	make build && go run ./bench/idle -gantry bin/gantry -services 1000,3000
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	benchserver "github.com/gantry-run/gantry/bench/internal/server"
	"github.com/gantry-run/gantry/internal/reconciler/revision/resources"
	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// The server's network, off the defaults and off the ranges the tests use (10.244–10.246).
const (
	bridge  = "gantry-idle0"
	podCIDR = "10.247.0.0/16"
	ns      = "idle"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

func main() {
	gantry := flag.String("gantry", "bin/gantry", "gantry binary to measure")
	baseline := flag.String("baseline", "", "a second gantry binary to measure the same way (e.g. one built from an earlier commit)")
	counts := flag.String("pods", "0,30,100", "comma-separated pod counts, ascending: each step adds pods to the ones already running")
	shape := flag.String("shape", "revision", "pod shape: revision (hello + queue-proxy) or plain (hello with an HTTP readiness probe)")
	measure := flag.Duration("measure", time.Minute, "how long CPU is measured at each pod count")
	settle := flag.Duration("settle", 30*time.Second, "how long the server idles after the last pod is Ready, before measuring")
	images := flag.String("images", "test/images", "directory of the test images (the hello image is built from it)")
	flag.Func("server-args", "more flags for gantry server, space-separated (e.g. --watch-cache=true)", func(v string) error {
		serverArgs = strings.Fields(v)
		return nil
	})
	flag.IntVar(&firstTries, "first", 5, "with -services: how many services are called for their first request at each count")
	flag.StringVar(&profileDir, "profile-dir", "", "with -services: write the server's heap and a 20 s CPU profile at each count into this directory (the server runs with --profiling)")
	services := flag.String("services", "", "comma-separated counts of Knative Services scaled to zero, ascending (e.g. 1000,3000): measures those instead of pods")
	flag.Parse()
	if *services != "" {
		if err := runServices(context.Background(), *gantry, *services, *images, *settle, *measure); err != nil {
			fmt.Fprintf(os.Stderr, "idle: %v\n", err)
			os.Exit(1)
		}
		return
	}
	steps, err := parseCounts(*counts)
	if err == nil && *shape != "revision" && *shape != "plain" {
		err = fmt.Errorf("-shape %q: must be revision or plain", *shape)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "idle: %v\n", err)
		os.Exit(2)
	}
	bins := []string{*gantry}
	if *baseline != "" {
		bins = append(bins, *baseline)
	}
	results := map[string][]result{}
	for _, bin := range bins {
		res, err := run(context.Background(), bin, steps, *shape, *images, *settle, *measure)
		if err != nil {
			fmt.Fprintf(os.Stderr, "idle: %s: %v\n", bin, err)
			os.Exit(1)
		}
		results[bin] = res
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "binary\tidle pods\tCPU (% of one core)\tpod status writes/min\tall API writes/min\t")
	for _, bin := range bins {
		for _, r := range results[bin] {
			fmt.Fprintf(tw, "%s\t%d\t%.1f %%\t%s\t%s\t\n", bin, r.pods, r.cpuPercent, perMin(r.podStatusWrites, *measure), perMin(r.writes, *measure))
		}
	}
	_ = tw.Flush()
	fmt.Printf("\nshape %s; CPU of the gantry server process over %s after %s of settling; 2 cores shared with other work\n", *shape, *measure, *settle)
}

func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n > 500 || (len(out) > 0 && n < out[len(out)-1]) {
			return nil, fmt.Errorf("-pods %q: want ascending counts between 0 and 500", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func perMin(n float64, d time.Duration) string {
	if n < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", n/d.Minutes())
}

type result struct {
	pods            int
	cpuPercent      float64
	podStatusWrites float64 // -1: the API server's metrics could not be read
	writes          float64
}

// run starts one server and measures it at each pod count.
func run(ctx context.Context, bin string, counts []int, shape, images string, settle, measure time.Duration) (_ []result, err error) {
	dir, err := os.MkdirTemp("", "gantry-bench-idle-")
	if err != nil {
		return nil, err
	}
	srv, err := start(ctx, bin, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	defer func() { err = errors.Join(err, srv.Stop(), os.RemoveAll(dir)) }()

	ref := fmt.Sprintf("127.0.0.1:%d/hello", srv.RegistryPort)
	if out, err := exec.CommandContext(ctx, bin, "image", "build", filepath.Join(images, "hello"), ref).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the hello image: %w\n%s", err, out)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "kubeconfig.yaml"))
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 100, 200
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	if err := prepareNamespace(ctx, client); err != nil {
		return nil, err
	}
	var out []result
	have := 0
	for _, n := range counts {
		fmt.Fprintf(os.Stderr, "%s: %d pods …\n", bin, n)
		for i := have; i < n; i++ {
			if _, err := client.CoreV1().Pods(ns).Create(ctx, makePod(i, ref, shape), metav1.CreateOptions{}); err != nil {
				return nil, fmt.Errorf("creating pod %d: %w", i, err)
			}
		}
		have = n
		if err := waitReady(ctx, client, n, time.Minute+time.Duration(n)*2*time.Second); err != nil {
			return nil, err
		}
		time.Sleep(settle)
		r, err := srv.measure(ctx, client, measure)
		if err != nil {
			return nil, err
		}
		r.pods = n
		fmt.Fprintf(os.Stderr, "%s: %d pods: %.1f %% of one core\n", bin, n, r.cpuPercent)
		out = append(out, r)
	}
	return out, nil
}

// server is one gantry server process, with what this benchmark reads of it.
type server struct{ *benchserver.Server }

func start(ctx context.Context, bin, dir string) (*server, error) {
	s, err := benchserver.Start(ctx, benchserver.Options{Bin: bin, DataDir: dir, Bridge: bridge, PodCIDR: podCIDR, Profiling: profileDir != "", Args: serverArgs})
	if err != nil {
		return nil, err
	}
	return &server{s}, nil
}

// measure reads the server's CPU time and the API server's write counters over d.
func (s *server) measure(ctx context.Context, client kubernetes.Interface, d time.Duration) (result, error) {
	pid := s.Cmd.Process.Pid
	before, err := cpuTicks(pid)
	if err != nil {
		return result{}, err
	}
	podsBefore, allBefore, metricsErr := writeCounts(ctx, client)
	began := time.Now()
	select {
	case <-time.After(d):
	case <-s.Exited():
		return result{}, fmt.Errorf("gantry server exited while measured\n%s", s.Output())
	}
	after, err := cpuTicks(pid)
	if err != nil {
		return result{}, err
	}
	elapsed := time.Since(began)
	podsAfter, allAfter, err := writeCounts(ctx, client)
	r := result{
		cpuPercent:      float64(after-before) / clockTicks / elapsed.Seconds() * 100,
		podStatusWrites: (podsAfter - podsBefore) * d.Seconds() / elapsed.Seconds(),
		writes:          (allAfter - allBefore) * d.Seconds() / elapsed.Seconds(),
	}
	if metricsErr != nil || err != nil {
		fmt.Fprintf(os.Stderr, "reading the API server's metrics: %v\n", errors.Join(metricsErr, err))
		r.podStatusWrites, r.writes = -1, -1
	}
	return r, nil
}

// cpuTicks is the process's user and system time, in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces and parentheses: the fields follow the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the name.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return utime + stime, nil
}

// writeCounts sums the API server's apiserver_request_total counters of writes: those of
// pods/status, and all of them.
func writeCounts(ctx context.Context, client kubernetes.Interface) (podStatus, all float64, err error) {
	b, err := client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return 0, 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		labels, value, ok := strings.Cut(strings.TrimPrefix(line, "apiserver_request_total{"), "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		verb := label(labels, "verb")
		if verb != "POST" && verb != "PUT" && verb != "PATCH" && verb != "DELETE" && verb != "APPLY" {
			continue
		}
		all += v
		if label(labels, "resource") == "pods" && label(labels, "subresource") == "status" {
			podStatus += v
		}
	}
	return podStatus, all, sc.Err()
}

// label is the value of name in a Prometheus label set: a="x",b="y".
func label(labels, name string) string {
	_, rest, ok := strings.Cut(","+labels, ","+name+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// prepareNamespace creates the benchmark's namespace and waits for its default service
// account, without which pods are refused.
func prepareNamespace(ctx context.Context, client kubernetes.Interface) error {
	_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespace %s: no default service account within a minute", ns)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// makePod is the i-th pod of the given shape.
func makePod(i int, ref, shape string) *corev1.Pod {
	user := corev1.Container{
		Name: "user-container", Image: ref,
		Ports: []corev1.ContainerPort{{Name: "user-port", ContainerPort: 8080}},
		Env:   []corev1.EnvVar{{Name: "PORT", Value: "8080"}},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("idle-%03d", i), Labels: map[string]string{"app": "idle"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			EnableServiceLinks:            ptr.To(false),
		},
	}
	if shape == "plain" {
		user.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
			HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}}}
		pod.Spec.Containers = []corev1.Container{user}
		return pod
	}
	// A revision's pod as the revision reconciler makes it (resources.MakeDeployment with the
	// shipped configuration): the user container with the runtime contract's environment and
	// the queue-proxy with its readiness probe.
	rev := &servingv1.Revision{
		ObjectMeta: metav1.ObjectMeta{Name: "idle-00001", Namespace: ns, UID: "idle",
			Labels: map[string]string{servingv1.ConfigurationLabelKey: "idle", servingv1.ServiceLabelKey: "idle"}},
		Spec: servingv1.RevisionSpec{TimeoutSeconds: ptr.To[int64](1), PodSpec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "user-container", Image: ref, Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
			ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}}},
		}}}},
	}
	// The node offers its cores to the scheduler (2 here) and a queue-proxy requests 25m, so
	// at most 80 revision pods fit; the benchmark clears the request to place 100.
	cfg := config.NewConfig()
	cfg.Deployment.QueueSidecarCPURequest = resource.Quantity{}
	tmpl := resources.MakeDeployment(rev, cfg).Spec.Template
	pod.Labels = tmpl.Labels
	pod.Spec = tmpl.Spec
	pod.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
	return pod
}

// waitReady waits until n pods of the namespace are Ready.
func waitReady(ctx context.Context, client kubernetes.Interface, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		list, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		ready := 0
		if err == nil {
			for _, p := range list.Items {
				for _, c := range p.Status.Conditions {
					if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
			if ready >= n {
				return nil
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("%d of %d pods Ready after %s: %w", ready, n, timeout, err)
			}
			return fmt.Errorf("%d of %d pods Ready after %s", ready, n, timeout)
		}
		time.Sleep(time.Second)
	}
}
