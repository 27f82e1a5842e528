// Package pods benchmarks the serverless node against a real in-process Gantry: the time
// from creating a pod to its readiness probe passing, with the image cached, side by side
// with the sandbox alone (the same runc + CNI path driven directly, no API server, scheduler
// or node in between; without and with a user namespace, in turn), and the memory a pod's
// sandbox costs beyond its program. With GANTRY_TEST_ALLOW_HOST_USERS=1 every other pod runs
// in the host's user namespace, and their times are reported apart.
//
//	go test ./bench/pods -run '^$' -bench . -benchtime 1x -timeout 20m
package pods

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/poll"
	"github.com/gantry-run/gantry/internal/sandbox"
	"github.com/gantry-run/gantry/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const pods = 30

func report(b *testing.B, prefix string, ds []time.Duration) {
	slices.Sort(ds)
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, prefix+"-p50-ms")
	b.ReportMetric(float64(ds[len(ds)*95/100].Microseconds())/1000, prefix+"-p95-ms")
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func BenchmarkPodReady(b *testing.B) {
	env := testenv.Get(b)
	testenv.RequireNode(b)
	img := env.Image(b, "hello")
	ctx := context.Background()
	// Pull once, so every measured pod finds the image cached.
	pulled, err := env.Server.Store.Pull(ctx, img)
	if err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		ns := fmt.Sprintf("bench-pods-%d", i)
		if _, err := env.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		// Pods need the namespace's default service account, which a controller creates.
		poll.Until(b, "the default ServiceAccount of "+ns, time.Minute, func(ctx context.Context) (bool, error) {
			_, err := env.Client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			return err == nil, err
		})
		memBefore := memUsed()
		// With GANTRY_TEST_ALLOW_HOST_USERS=1 every other pod runs in the host's user
		// namespace (hostUsers: true), for pods with and without their own side by side.
		compare := os.Getenv("GANTRY_TEST_ALLOW_HOST_USERS") == "1"
		var full, fullHostUsers, direct []time.Duration
		for j := range pods {
			hostUsers := compare && j%2 == 1
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", j)},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: ptr.To[int64](1),
					Containers: []corev1.Container{{
						Name: "hello", Image: img,
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
							HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt(8080)}}, PeriodSeconds: 1},
					}},
				},
			}
			if hostUsers {
				pod.Spec.HostUsers = ptr.To(true)
			}
			start := time.Now()
			if _, err := env.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
			for {
				p, err := env.Client.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
				if err == nil && ready(p) {
					break
				}
				if time.Since(start) > time.Minute {
					b.Fatalf("pod %s not ready within a minute", pod.Name)
				}
				time.Sleep(2 * time.Millisecond)
			}
			if hostUsers {
				fullHostUsers = append(fullHostUsers, time.Since(start))
			} else {
				full = append(full, time.Since(start))
			}
		}
		perPod := (memUsed() - memBefore) / pods
		program := helloRSS()

		// Baseline: the sandbox alone, driven directly, without and with a user namespace in
		// turn (what a pod gets by default), so both see the same machine.
		m := env.Server.Sandboxes
		var directUserNS []time.Duration
		for j := range 2 * pods {
			id := fmt.Sprintf("bench-direct-%d-%d", i, j)
			userNS := j%2 == 1
			start := time.Now()
			sb, err := m.CreateSandbox(ctx, sandbox.PodSpec{ID: id, Namespace: ns, Name: id, UserNamespace: userNS})
			if err != nil {
				b.Fatal(err)
			}
			if err := m.StartContainer(ctx, id, sandbox.ContainerSpec{Name: "hello", Layers: pulled.Layers,
				Args: pulled.Config.Entrypoint, Env: pulled.Config.Env}); err != nil {
				b.Fatal(err)
			}
			url := "http://" + sb.IP.String() + ":8080/"
			for {
				if resp, err := http.Get(url); err == nil {
					resp.Body.Close()
					break
				}
				if time.Since(start) > time.Minute {
					b.Fatalf("sandbox %s not answering within a minute", id)
				}
				time.Sleep(2 * time.Millisecond)
			}
			if userNS {
				directUserNS = append(directUserNS, time.Since(start))
			} else {
				direct = append(direct, time.Since(start))
			}
			_ = m.StopContainer(ctx, id, "hello", time.Second)
			_ = m.RemoveSandbox(ctx, id)
		}
		report(b, "pod-create-to-ready", full)
		if compare {
			report(b, "pod-create-to-ready-hostusers", fullHostUsers)
		}
		report(b, "baseline-sandbox-direct", direct)
		report(b, "baseline-sandbox-direct-userns", directUserNS)
		b.ReportMetric(float64(perPod)/(1<<20), "MB-per-pod-host")
		b.ReportMetric(float64(program)/(1<<20), "MB-hello-program-rss")
		_ = env.Client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	}
}

// memUsed is MemTotal − MemAvailable, in bytes.
func memUsed() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	vals := map[string]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		vals[k] = n << 10
	}
	return vals["MemTotal"] - vals["MemAvailable"]
}

// helloRSS is the resident memory of one hello program, read from a running process.
func helloRSS() int64 {
	matches, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil || !strings.HasPrefix(string(b), "/app") {
			continue
		}
		status, err := os.ReadFile(filepath.Join(filepath.Dir(m), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
