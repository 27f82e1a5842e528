package main

// -compare: the queue-proxy of two builds side by side. One server (from -gantry) runs two
// Services of hello, one pod each: the pod of "a" runs the queue-proxy of -gantry, the pod of
// "b" the queue-proxy of the -compare build. The node starts a pod's queue-proxy from a file
// as it is when the pod starts: the queue-proxy binary the server carries, installed in its
// data dir (internal/qpbin), or the server's own executable when it carries none. That file
// is swapped for the other build while b's pod starts, then put back. The other build is a
// static queue-proxy binary (CGO_ENABLED=0 go build ./cmd/gantry-queue-proxy) or a gantry
// binary, which runs as a queue-proxy too (with the Kubernetes packages it initializes on
// top). wrk then alternates
// between the two through the gateway, a then b in odd rounds and b then a in even ones, and
// the table gives each run's rate and the CPU per request of each queue-proxy: the same
// machine, the same minute, the same gateway, so what differs is the queue-proxy.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gantry-run/gantry/bench/internal/server"
	"github.com/gantry-run/gantry/internal/controlplane/datadir"
	"github.com/gantry-run/gantry/internal/qpbin"
	"github.com/gantry-run/gantry/internal/queue/contract"
)

func compareQueueProxies(bin, other string, rounds int, d time.Duration, conns int, serverArgs []string) (err error) {
	// b's pod runs it in the queue-proxy's empty root, where it would never start otherwise.
	if err := qpbin.CheckExecutable(other); err != nil {
		return fmt.Errorf("-compare: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute+time.Duration(rounds)*2*(d+5*time.Second))
	defer cancel()
	tmp, err := server.TempDir("bench-throughput-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// The server runs from a copy, so that swapping the file touches neither build.
	exe := filepath.Join(tmp, "gantry")
	if err := install(bin, exe); err != nil {
		return err
	}
	dataDir := filepath.Join(tmp, "server")
	srv, err := startServer(ctx, exe, dataDir, serverArgs)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, srv.Stop()) }()
	kubectl := kubectlFor(ctx, exe, srv.Kubeconfig())
	ref, err := srv.BuildImage(ctx, "test/images/hello", "hello")
	if err != nil {
		return err
	}
	qp := exe
	if carried, _ := filepath.Glob(filepath.Join(dataDir, datadir.BinDir, "queue-proxy-*")); len(carried) == 1 {
		qp = carried[0]
	}
	own := filepath.Join(tmp, "queue-proxy")
	if err := copyFile(qp, own); err != nil {
		return err
	}
	uids := map[string]string{}
	for _, svc := range []struct{ name, build string }{{"a", own}, {"b", other}} {
		if err := install(svc.build, qp); err != nil {
			return err
		}
		if err := deployOnePod(kubectl, svc.name, ref); err != nil {
			return err
		}
		if uids[svc.name], err = kubectl("", "get", "pods", "-l", "serving.knative.dev/service="+svc.name, "-o", "jsonpath={.items[0].metadata.uid}"); err != nil {
			return err
		}
	}
	if err := install(own, qp); err != nil {
		return err
	}
	qps, err := queueProxiesByPod(dataDir)
	if err != nil {
		return err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", srv.HTTPPort)
	names := []string{"a", "b"}
	procs := make(map[string][][]int)
	for _, n := range names {
		pid, ok := qps[uids[n]]
		if !ok {
			return fmt.Errorf("no queue-proxy found for the pod of %s (%s)", n, uids[n])
		}
		procs[n] = [][]int{{srv.Cmd.Process.Pid}, {pid}, nil, nil}
		if _, _, err := wrk(ctx, url, n+".default.localhost", conns, 2*time.Second); err != nil {
			return err
		}
	}
	type run struct{ rps, qp, all float64 }
	results := map[string][]run{}
	fmt.Printf("\n| round | a: req/s | a: queue-proxy µs/request | a: all µs/request | b: req/s | b: queue-proxy µs/request | b: all µs/request |\n|---|---|---|---|---|---|---|\n")
	for r := range rounds {
		order := names
		if r%2 == 1 {
			order = []string{"b", "a"}
		}
		for _, n := range order {
			before, err := sample(procs[n])
			if err != nil {
				return err
			}
			rps, wrkCPU, err := wrk(ctx, url, n+".default.localhost", conns, d)
			if err != nil {
				return err
			}
			after, err := sample(procs[n])
			if err != nil {
				return err
			}
			parts := perRequest(before, after, wrkCPU, rps*d.Seconds())
			all := 0.0
			for _, v := range parts {
				all += v
			}
			results[n] = append(results[n], run{rps: rps, qp: parts[2], all: all})
		}
		a, b := results["a"][r], results["b"][r]
		fmt.Printf("| %d | %.0f | %.1f | %.1f | %.0f | %.1f | %.1f |\n", r+1, a.rps, a.qp, a.all, b.rps, b.qp, b.all)
	}
	median := func(n string, f func(run) float64) float64 {
		var v []float64
		for _, x := range results[n] {
			v = append(v, f(x))
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	lower := 0
	for r := range rounds {
		if results["b"][r].qp < results["a"][r].qp {
			lower++
		}
	}
	fmt.Printf("| median | %.0f | %.1f | %.1f | %.0f | %.1f | %.1f |\n", median("a", func(x run) float64 { return x.rps }),
		median("a", func(x run) float64 { return x.qp }), median("a", func(x run) float64 { return x.all }),
		median("b", func(x run) float64 { return x.rps }), median("b", func(x run) float64 { return x.qp }),
		median("b", func(x run) float64 { return x.all }))
	aName := bin
	if qp != exe {
		aName = "the queue-proxy binary " + bin + " carries"
	}
	fmt.Printf("\na: %s; b: %s, run as the queue-proxy (wrk -t2 -c%d, %s per run, through the gateway).\n"+
		"b's queue-proxy used less CPU per request than a's in %d of %d rounds.\n", aName, other, conns, d, lower, rounds)
	return nil
}

// deployOnePod creates the Service name of image ref with one pod, kept (min-scale and
// max-scale 1), and waits until it is Ready.
func deployOnePod(kubectl func(stdin string, args ...string) (string, error), name, ref string) error {
	if _, err := kubectl(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: `+name+`
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/min-scale: "1"
        autoscaling.knative.dev/max-scale: "1"
    spec:
      containers:
        - image: `+ref+"\n", "apply", "-f", "-"); err != nil {
		return err
	}
	_, err := kubectl("", "wait", "--for=condition=Ready", "ksvc/"+name, "--timeout=3m")
	return err
}

// queueProxiesByPod maps each pod's UID to the process of its queue-proxy, from the node's
// sandboxes and the processes' cgroups (which name the pod).
func queueProxiesByPod(dataDir string) (map[string]int, error) {
	files, _ := filepath.Glob(filepath.Join(dataDir, "sandboxes", "sandboxes", "*", "containers", contract.ContainerName, "pid"))
	out := map[string]int{}
	for _, f := range files {
		pid, err := pidIn(f)
		if err != nil {
			return nil, err
		}
		cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(cg), "\n") {
			parts := strings.Split(line, "/")
			if len(parts) >= 2 && parts[len(parts)-1] == contract.ContainerName {
				out[parts[len(parts)-2]] = pid
			}
		}
	}
	return out, nil
}

// install puts a copy of src at dst by renaming it there: a running process keeps the file
// it was started from.
func install(src, dst string) error {
	if err := copyFile(src, dst+".new"); err != nil {
		return err
	}
	return os.Rename(dst+".new", dst)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}
