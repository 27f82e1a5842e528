// Command throughput measures the request path's maximum throughput as the issue states it:
// wrk (2 threads, 50 connections) on the same machine as a real `gantry server`, against a
// pod of the hello test image straight on its user port, on its queue-proxy's port, and
// through the gateway, side by side in each round. Each round runs the three with the
// relays (the server, which holds the gateway, and the pod's queue-proxy) under both Linux
// scheduling policies that --sched-policy offers, switched between runs on the live
// processes, so the two are compared on the same pod in the same minute. The app keeps the
// default policy throughout. Beside the rates it reports where the two cores went: the CPU
// time per request of wrk, the server, the queue-proxy and the app (from their rusage and
// /proc/<pid>/stat) and of the rest of the machine (the kernel's softirq work, other
// processes), from /proc/stat. With -floor (the default) it also sends the load through
// relays that stand in for the gateway and the queue-proxy (relay.go): internal/h1proxy alone
// in the gateway's place, pairs of relays that only copy bytes, the least any two relays
// on this path can cost, and one such relay in the queue-proxy's place alone, the least a
// path with one relay (a passed connection's) can cost; and in that place two relays that do
// the queue-proxy's per-request HTTP work, one on internal/h1proxy's goroutines and one from
// an epoll loop (httprelay.go). It needs root, runc, the CNI plugins, nsenter and wrk (apt-get
// install wrk), and prints two tables. With -compare it compares the queue-proxy of two
// builds instead (compare.go).
//
//	go run ./bench/throughput -gantry bin/gantry -rounds 3
//	go run ./bench/throughput -gantry bin/gantry -compare old/queue-proxy -rounds 10 -duration 6s
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-run/gantry/bench/internal/server"
	"github.com/gantry-run/gantry/internal/freeport"
	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/sched"
)

func main() {
	bin := flag.String("gantry", "bin/gantry", "the gantry binary")
	rounds := flag.Int("rounds", 3, "rounds, each running every target under each policy")
	d := flag.Duration("duration", 10*time.Second, "length of each wrk run")
	conns := flag.Int("connections", 50, "wrk's connections (its threads: 2)")
	serverArgs := flag.String("server-args", "", "more flags for gantry server, space-separated (e.g. --pass-connections=false)")
	floor := flag.Bool("floor", true, "also measure internal/h1proxy alone in the gateway's place, two relays that only copy bytes in the gateway's and the queue-proxy's places, one such relay in the queue-proxy's place, and two relays doing the queue-proxy's HTTP work there (h1proxy goroutines, an epoll loop)")
	relayKind := flag.String("relay-kind", "", "internal: the kind of relay this process is")
	relayListen := flag.String("relay-listen", "", "internal: run as a relay listening here")
	relayUpstream := flag.String("relay-upstream", "", "internal: where the relay sends")
	compare := flag.String("compare", "", "another build's static queue-proxy binary (CGO_ENABLED=0 go build ./cmd/gantry-queue-proxy) or gantry binary: instead of the tables, compare its queue-proxy with -gantry's, side by side through the gateway (compare.go)")
	flag.Parse()
	if *relayListen == "" && (*relayKind != "" || *relayUpstream != "") {
		fmt.Fprintln(os.Stderr, "bench/throughput: -relay-kind and -relay-upstream need -relay-listen")
		os.Exit(2)
	}
	if *relayListen != "" {
		// A relay serves until it is killed.
		fmt.Fprintln(os.Stderr, "bench/throughput: relay:", runRelay(*relayKind, *relayListen, *relayUpstream))
		os.Exit(1)
	}
	if *compare != "" {
		floorSet := false
		flag.Visit(func(f *flag.Flag) { floorSet = floorSet || f.Name == "floor" })
		if floorSet {
			fmt.Fprintln(os.Stderr, "bench/throughput: -floor does not apply with -compare (it compares two queue-proxies, without floor relays)")
			os.Exit(2)
		}
		if err := compareQueueProxies(*bin, *compare, *rounds, *d, *conns, strings.Fields(*serverArgs)); err != nil {
			fmt.Fprintln(os.Stderr, "bench/throughput:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*bin, *rounds, *d, *conns, *floor, strings.Fields(*serverArgs)); err != nil {
		fmt.Fprintln(os.Stderr, "bench/throughput:", err)
		os.Exit(1)
	}
}

const host = "tput.default.localhost"

func run(bin string, rounds int, d time.Duration, conns int, floor bool, serverArgs []string) (err error) {
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk is not installed (apt-get install wrk)")
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute+time.Duration(rounds)*7*(d+5*time.Second))
	defer cancel()
	tmp, err := server.TempDir("bench-throughput-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dataDir := filepath.Join(tmp, "server")
	srv, err := startServer(ctx, bin, dataDir, serverArgs)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, srv.Stop()) }()
	kubectl := kubectlFor(ctx, bin, srv.Kubeconfig())
	ref, err := srv.BuildImage(ctx, "test/images/hello", "hello")
	if err != nil {
		return err
	}
	if err := deployOnePod(kubectl, "tput", ref); err != nil {
		return err
	}
	podIP, err := kubectl("", "get", "pods", "-l", "serving.knative.dev/service=tput", "-o", "jsonpath={.items[0].status.podIP}")
	if err != nil {
		return err
	}
	qp, err := containerPID(dataDir, contract.ContainerName)
	if err != nil {
		return err
	}
	app, err := containerPID(dataDir, "user-container")
	if err != nil {
		return err
	}
	relays := map[string]int{"gantry server": srv.Cmd.Process.Pid, "queue-proxy": qp}
	procs := [][]int{{srv.Cmd.Process.Pid}, {qp}, {app}, nil} // in the order of cpuParts after wrk
	targets := []struct{ name, url string }{
		{"straight to the pod (user port)", "http://" + podIP + ":8080/"},
		{"to the pod's queue-proxy", fmt.Sprintf("http://%s:%d/", podIP, contract.HTTPPort)},
		{"through the gateway", fmt.Sprintf("http://127.0.0.1:%d/", srv.HTTPPort)},
	}
	if floor {
		ports, err := freeport.Get(3)
		if err != nil {
			return err
		}
		sockets, _ := filepath.Glob(filepath.Join(dataDir, "sandboxes", "sandboxes", "*", "volumes", "*", contract.SocketName))
		if len(sockets) != 1 {
			return fmt.Errorf("%d queue-proxy sockets under %s, want 1", len(sockets), dataDir)
		}
		// A socket's path is limited to 107 bytes, which the sandbox's can pass: a short link
		// to its directory.
		short := filepath.Join(tmp, "q")
		if err := os.Symlink(filepath.Dir(sockets[0]), short); err != nil {
			return err
		}
		h1, err := startRelay(ctx, relayH1proxy, fmt.Sprintf("127.0.0.1:%d", ports[2]), filepath.Join(short, contract.SocketName), "")
		if err != nil {
			return err
		}
		defer stopRelay(h1)
		relays["h1proxy relay"] = h1.Process.Pid
		procs[3] = append(procs[3], h1.Process.Pid)
		targets = append(targets, struct{ name, url string }{"through h1proxy alone (no routing, no activator) + queue-proxy", fmt.Sprintf("http://127.0.0.1:%d/", ports[2])})
		for i, kind := range []string{relayCopy, relayEpoll} {
			f, err := startFloor(ctx, kind, tmp, qp, 8080, ports[i])
			if err != nil {
				return err
			}
			defer f.stop()
			for j, pid := range f.pids() {
				relays[fmt.Sprintf("floor relay %s %d", kind, j)] = pid
			}
			procs[3] = append(procs[3], f.pids()...)
			targets = append(targets, struct{ name, url string }{"through two relays that copy bytes (" + kind + ")", f.url})
		}
		// In the pod's network namespace the ports are free but for the queue-proxy's and
		// the app's.
		for i, kind := range []string{relayCopy, relayEpoll, relayH1HTTP, relayLoopHTTP} {
			c, url, err := startPodRelay(ctx, kind, qp, podIP, 18501+i, 8080)
			if err != nil {
				return err
			}
			defer stopRelay(c)
			relays["pod relay "+kind] = c.Process.Pid
			procs[3] = append(procs[3], c.Process.Pid)
			name := "through one relay that copies bytes, in the queue-proxy's place (" + kind + ")"
			if kind == relayH1HTTP || kind == relayLoopHTTP {
				name = "through one relay doing the queue-proxy's HTTP work, in its place (" + kind + ")"
			}
			targets = append(targets, struct{ name, url string }{name, url})
		}
	}
	// Warm every path's connections.
	for _, tg := range targets {
		if _, _, err := wrk(ctx, tg.url, host, conns, 2*time.Second); err != nil {
			return err
		}
	}
	policies := []sched.Policy{sched.Normal, sched.Batch}
	type cell struct {
		rps []float64
		cpu [][]float64 // per run: µs of CPU per request of each of cpuParts
	}
	results := map[sched.Policy][]cell{}
	for _, p := range policies {
		results[p] = make([]cell, len(targets))
	}
	for r := range rounds {
		for _, p := range policies {
			for what, pid := range relays {
				if err := sched.Apply(pid, p); err != nil {
					return fmt.Errorf("%s: %w", what, err)
				}
			}
			for i, tg := range targets {
				before, err := sample(procs)
				if err != nil {
					return err
				}
				rps, wrkCPU, err := wrk(ctx, tg.url, host, conns, d)
				if err != nil {
					return err
				}
				after, err := sample(procs)
				if err != nil {
					return err
				}
				results[p][i].rps = append(results[p][i].rps, rps)
				results[p][i].cpu = append(results[p][i].cpu, perRequest(before, after, wrkCPU, rps*d.Seconds()))
			}
			fmt.Fprintf(os.Stderr, "round %d, %s: %.0f / %.0f / %.0f req/s\n", r+1, p, results[p][0].rps[r], results[p][1].rps[r], results[p][2].rps[r])
		}
	}
	fmt.Printf("\n| hello, wrk -t2 -c%d, %s per run, %d rounds | relays SCHED_OTHER (normal): req/s (ratio to user port) | relays SCHED_BATCH (batch): req/s (ratio) |\n|---|---|---|\n", conns, d, rounds)
	for i, tg := range targets {
		fmt.Printf("| %s |", tg.name)
		for _, p := range policies {
			var parts []string
			for r, rps := range results[p][i].rps {
				if i == 0 {
					parts = append(parts, fmt.Sprintf("%.0f", rps))
				} else {
					parts = append(parts, fmt.Sprintf("%.0f (%.2f)", rps, rps/results[p][0].rps[r]))
				}
			}
			fmt.Printf(" %s |", strings.Join(parts, " / "))
		}
		fmt.Println()
	}
	for _, p := range policies {
		for i := 2; i < len(targets); i++ {
			var ratios []float64
			for r := range rounds {
				ratios = append(ratios, results[p][i].rps[r]/results[p][0].rps[r])
			}
			slices.Sort(ratios)
			fmt.Printf("\n%s: median ratio to the user port %.2f %s", p, ratios[len(ratios)/2], targets[i].name)
		}
	}
	fmt.Println()
	for _, p := range policies {
		fmt.Printf("\n| CPU per request, µs (relays %s, mean of %d rounds) | %s | all |\n|---|%s---|\n", p, rounds,
			strings.Join(cpuParts, " | "), strings.Repeat("---|", len(cpuParts)))
		for i, tg := range targets {
			mean := make([]float64, len(cpuParts))
			for _, run := range results[p][i].cpu {
				for k, v := range run {
					mean[k] += v / float64(len(results[p][i].cpu))
				}
			}
			fmt.Printf("| %s |", tg.name)
			total := 0.0
			for _, v := range mean {
				fmt.Printf(" %.1f |", v)
				total += v
			}
			fmt.Printf(" %.1f |\n", total)
		}
	}
	return nil
}

// cpuParts are the columns of the CPU table: the load generator, the relays, the app, the
// relays started for comparison (-floor) together, and the rest of the busy time of the
// machine (mostly the kernel's softirq work for packets).
var cpuParts = []string{"wrk", "gantry server", "queue-proxy", "app", "other relays", "rest"}

// usage is the CPU time, in clock ticks, of each group of a run's processes and of the
// machine.
type usage struct {
	procs []float64
	busy  float64 // every CPU's non-idle time, /proc/stat
}

// sample reads the CPU time of each group of pids (user and system, every thread) and of
// the machine.
func sample(groups [][]int) (usage, error) {
	var u usage
	for _, pids := range groups {
		sum := 0.0
		for _, pid := range pids {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				return u, err
			}
			// The fields after the command's closing parenthesis; utime and stime are 14 and 15.
			f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
			ut, _ := strconv.ParseFloat(f[11], 64)
			st, _ := strconv.ParseFloat(f[12], 64)
			sum += ut + st
		}
		u.procs = append(u.procs, sum)
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return u, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	for i, v := range strings.Fields(string(line))[1:] {
		if i == 3 || i == 4 || i >= 7 { // idle, iowait; steal and the guests
			continue
		}
		n, _ := strconv.ParseFloat(v, 64)
		u.busy += n
	}
	return u, nil
}

// clockTick is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// perRequest spreads the CPU time between two samples over n requests, in µs, in the order
// of cpuParts; wrkCPU is wrk's own, from its rusage.
func perRequest(before, after usage, wrkCPU time.Duration, n float64) []float64 {
	us := func(ticks float64) float64 { return ticks * float64(clockTick/time.Microsecond) / n }
	out := []float64{float64(wrkCPU/time.Microsecond) / n}
	rest := us(after.busy-before.busy) - out[0]
	for i := range before.procs {
		v := us(after.procs[i] - before.procs[i])
		out = append(out, v)
		rest -= v
	}
	return append(out, max(rest, 0))
}

var rpsLine = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// wrk runs wrk with two threads and conns connections on url for d, with the Host host,
// and returns its requests per second and the CPU time it used; an answer other than
// 2xx or a socket error fails the run.
func wrk(ctx context.Context, url, host string, conns int, d time.Duration) (float64, time.Duration, error) {
	cmd := exec.CommandContext(ctx, "wrk", "-t2", "-c"+strconv.Itoa(conns), "-d"+d.String(), "-H", "Host: "+host, url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("wrk %s: %w\n%s", url, err, out)
	}
	if bytes.Contains(out, []byte("Non-2xx")) || bytes.Contains(out, []byte("Socket errors")) {
		return 0, 0, fmt.Errorf("wrk %s: failed requests\n%s", url, out)
	}
	m := rpsLine.FindSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("wrk %s: no Requests/sec in\n%s", url, out)
	}
	rps, err := strconv.ParseFloat(string(m[1]), 64)
	return rps, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), err
}

// containerPID is the process of the one pod's container name, from the node's sandboxes.
func containerPID(dataDir, name string) (int, error) {
	files, _ := filepath.Glob(filepath.Join(dataDir, "sandboxes", "sandboxes", "*", "containers", name, "pid"))
	if len(files) != 1 {
		return 0, fmt.Errorf("%d %s pid files under %s, want 1", len(files), name, dataDir)
	}
	return pidIn(files[0])
}

// pidIn reads a pid file.
func pidIn(file string) (int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// startServer starts gantry server from bin with its data in dataDir, on this benchmark's own
// bridge and pod network, the dashboard off, and serverArgs.
func startServer(ctx context.Context, bin, dataDir string, serverArgs []string) (*server.Server, error) {
	return server.Start(ctx, server.Options{Bin: bin, DataDir: dataDir, Bridge: "gantry-tp0", PodCIDR: "10.243.0.0/16",
		Args: append([]string{"--dashboard=false"}, serverArgs...)})
}

// kubectlFor runs bin's kubectl against kubeconfig, with stdin, and returns its output.
func kubectlFor(ctx context.Context, bin, kubeconfig string) func(stdin string, args ...string) (string, error) {
	return func(stdin string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, append([]string{"kubectl", "--kubeconfig", kubeconfig}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out)), nil
	}
}
