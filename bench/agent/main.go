// Command agent measures how long a machine takes to join a gantry server as a node (issue 13,
// Performance: agent join → node Ready, target ≤ 5 s). It starts gantry server on its own
// data dir, ports and pod range, then -runs times starts `gantry agent` on a fresh data dir
// under a fresh node name and times, from the agent's start:
//
//   - the agent's "node ready" line: discovery (the CA the token pins, cluster-info's
//     signature), the node's client certificate and the kubelet serving certificate by CSR,
//     the node's registration and its network;
//   - the Node's Ready condition True as the API shows it (what a scheduler waits for).
//
// The baseline in the same run is the same agent started again on its data dir after a clean
// stop: its certificates are kept and reused, so it asks for none.
//
//	make build && go run ./bench/agent -gantry bin/gantry -runs 5
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gantry-run/gantry/bench/internal/server"
	"github.com/gantry-run/gantry/internal/freeport"
)

// The networks of this benchmark: off every test's and other benchmark's.
const (
	serverBridge, serverCIDR = "gantry-bjs0", "10.238.0.0/16"
	agentBridge, agentCIDR   = "gantry-bja0", "10.239.0.0/16"
	// joinTimeout bounds one join.
	joinTimeout = time.Minute
)

func main() {
	bin := flag.String("gantry", "bin/gantry", "the gantry binary")
	runs := flag.Int("runs", 5, "joins to time")
	flag.Parse()
	if err := run(*bin, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench/agent:", err)
		os.Exit(1)
	}
}

func run(bin string, runs int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	tmp, err := server.TempDir("bench-agent-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	srv, err := server.Start(ctx, server.Options{Bin: bin, DataDir: filepath.Join(tmp, "server"), Bridge: serverBridge, PodCIDR: serverCIDR})
	if err != nil {
		return err
	}
	defer func() {
		_ = srv.Stop()
		_ = exec.Command("ip", "link", "del", serverBridge).Run() // gantry cleanup keeps bridges
	}()
	cfg, err := clientcmd.BuildConfigFromFlags("", srv.Kubeconfig())
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	token := filepath.Join(tmp, "server", "token")

	var fresh, ready, rejoin []time.Duration
	for i := range runs {
		name := "bench-" + strconv.Itoa(i)
		dir := filepath.Join(tmp, name)
		line, api, err := join(ctx, bin, cfg.Host, token, name, dir, client, true)
		if err != nil {
			return fmt.Errorf("join %d: %w", i, err)
		}
		fresh, ready = append(fresh, line), append(ready, api)
		line, _, err = join(ctx, bin, cfg.Host, token, name, dir, client, false)
		if err != nil {
			return fmt.Errorf("rejoin %d: %w", i, err)
		}
		rejoin = append(rejoin, line)
		_ = exec.Command(bin, "cleanup", "--data-dir", dir, "--bridge", agentBridge, "--pod-cidr", agentCIDR).Run()
	}
	_ = exec.Command("ip", "link", "del", agentBridge).Run()

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "measure (%d runs)\tp50\tmin\tmax\n", runs)
	for _, r := range []struct {
		what string
		d    []time.Duration
	}{
		{"agent start → its \"node ready\" line, fresh join (discovery, 2 CSRs, registration)", fresh},
		{"agent start → Node Ready=True in the API, fresh join", ready},
		{"baseline: agent restart with kept certificates → \"node ready\"", rejoin},
	} {
		slices.Sort(r.d)
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.what, ms(r.d[len(r.d)/2]), ms(r.d[0]), ms(r.d[len(r.d)-1]))
	}
	return w.Flush()
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) + " ms" }

// join starts the agent and times its "node ready" line and (when waitAPI) the Node's Ready
// condition in the API, then stops it cleanly.
func join(ctx context.Context, bin, server, tokenFile, name, dir string, client kubernetes.Interface, waitAPI bool) (line, api time.Duration, err error) {
	ports, err := freeport.Get(1)
	if err != nil {
		return 0, 0, err
	}
	cmd := exec.Command(bin, "agent", "--server", server, "--token-file", tokenFile, "--node-name", name,
		"--data-dir", dir, "--bridge", agentBridge, "--pod-cidr", agentCIDR,
		"--kubelet-port", strconv.Itoa(ports[0]), "--address", "127.0.0.1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, 0, err
	}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	lines := make(chan time.Duration, 1)
	var mu sync.Mutex
	var out strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), `msg="node ready"`) {
				lines <- time.Since(began)
			}
		}
	}()
	select {
	case line = <-lines:
	case <-time.After(joinTimeout):
		mu.Lock()
		defer mu.Unlock()
		return 0, 0, fmt.Errorf("no \"node ready\" line within a minute:\n%s", out.String())
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	if !waitAPI {
		return line, 0, nil
	}
	deadline := time.Now().Add(joinTimeout)
	for time.Now().Before(deadline) {
		n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return line, time.Since(began), nil
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, 0, fmt.Errorf("node %s not Ready within a minute", name)
}
