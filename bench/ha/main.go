// Command ha measures the API's write latency with a highly available control plane (issue 13,
// Performance: API write latency with 3 servers vs 1, p50/p99 of ConfigMap creates). In one
// run it starts a single gantry server and a cluster of three (--cluster-init, then two
// --server joins), all on this machine without their nodes, and times ConfigMap creates, one
// at a time, against:
//
//   - the single server (the baseline: one etcd member, no replication);
//   - the cluster's server whose etcd member leads (a write is committed once a second member
//     has it);
//   - a cluster server whose member follows (its etcd forwards the write to the leader first).
//
// The three are measured in interleaved rounds, so a slow moment of the machine falls on all.
//
//	make build && go run ./bench/ha -gantry bin/gantry -creates 300
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gantry-run/gantry/bench/internal/server"
	"github.com/gantry-run/gantry/internal/freeport"
)

// The bridges and ranges of this benchmark's servers (their nodes are off, so neither is
// created; they only keep the flags off every other run's).
var networks = [][2]string{
	{"gantry-ha0", "10.230.0.0/16"}, {"gantry-ha1", "10.231.0.0/16"},
	{"gantry-ha2", "10.232.0.0/16"}, {"gantry-ha3", "10.233.0.0/16"},
}

// rounds is how many interleaved rounds the creates are split into.
const rounds = 10

func main() {
	bin := flag.String("gantry", "bin/gantry", "the gantry binary")
	creates := flag.Int("creates", 300, "ConfigMap creates per target")
	flag.Parse()
	if err := run(*bin, *creates); err != nil {
		fmt.Fprintln(os.Stderr, "bench/ha:", err)
		os.Exit(1)
	}
}

type target struct {
	name   string
	srv    *server.Server
	client kubernetes.Interface
	times  []time.Duration
}

func run(bin string, creates int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	tmp, err := os.MkdirTemp("", "bench-ha-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var started []*server.Server
	defer func() {
		// The cluster's last server to stop has lost its quorum: its stop runs into its
		// bound. Stop them together.
		var wg sync.WaitGroup
		for _, s := range started {
			wg.Go(func() { _ = s.Stop() })
		}
		wg.Wait()
	}()
	start := func(name string, i int, args ...string) (*server.Server, error) {
		if len(args) > 0 {
			// A server of a cluster has an autoscaler endpoint: one port each on one machine.
			port, err := freeport.Get(1)
			if err != nil {
				return nil, err
			}
			args = append(args, fmt.Sprintf("--autoscaler-port=%d", port[0]))
		}
		s, err := server.Start(ctx, server.Options{Bin: bin, DataDir: filepath.Join(tmp, name),
			Bridge: networks[i][0], PodCIDR: networks[i][1],
			Args: append([]string{"--node=false", "--etcd-snapshot-interval=0", "--dashboard=false"}, args...)})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		started = append(started, s)
		return s, nil
	}
	single, err := start("single", 0)
	if err != nil {
		return err
	}
	first, err := start("s1", 1, "--cluster-init")
	if err != nil {
		return err
	}
	url := func(s *server.Server) string { return fmt.Sprintf("https://127.0.0.1:%d", s.HTTPSPort) }
	tokenFile := filepath.Join(tmp, "s1", "server-token")
	cluster := []*server.Server{first}
	for i, name := range []string{"s2", "s3"} {
		s, err := start(name, i+2, "--server", url(first), "--token-file", tokenFile)
		if err != nil {
			return err
		}
		cluster = append(cluster, s)
	}
	var leader, follower *server.Server
	for _, s := range cluster {
		v, err := etcdMetric(ctx, s, "etcd_server_is_leader")
		if err != nil {
			return err
		}
		if v == "1" && leader == nil {
			leader = s
		} else if follower == nil {
			follower = s
		}
	}
	if leader == nil || follower == nil {
		return errors.New("no etcd leader among the three servers")
	}
	var targets []*target
	for _, t := range []struct {
		name string
		srv  *server.Server
	}{{"1 server", single}, {"3 servers, via the etcd leader's server", leader}, {"3 servers, via a follower's server", follower}} {
		cfg, err := clientcmd.BuildConfigFromFlags("", t.srv.Kubeconfig())
		if err != nil {
			return err
		}
		cfg.QPS, cfg.Burst = 1000, 1000
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return err
		}
		targets = append(targets, &target{name: t.name, srv: t.srv, client: client})
	}
	// A few creates each first: connections and caches warm.
	for ti, t := range targets {
		for i := range 10 {
			if _, err := create(ctx, t.client, fmt.Sprintf("warm-%d-%d", ti, i)); err != nil {
				return fmt.Errorf("%s: %w", t.name, err)
			}
		}
	}
	perRound := max(creates/rounds, 1)
	for r := range rounds {
		for ti, t := range targets {
			for i := range perRound {
				d, err := create(ctx, t.client, fmt.Sprintf("bench-%d-%d-%d", r, ti, i))
				if err != nil {
					return fmt.Errorf("%s: %w", t.name, err)
				}
				t.times = append(t.times, d)
			}
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "ConfigMap creates, one at a time (%d each)\tp50\tp99\tmax\n", perRound*rounds)
	for _, t := range targets {
		slices.Sort(t.times)
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", t.name, pct(t.times, 50), pct(t.times, 99), t.times[len(t.times)-1].Round(10*time.Microsecond))
	}
	return w.Flush()
}

// create makes one ConfigMap and returns how long the API took to answer.
func create(ctx context.Context, client kubernetes.Interface, name string) (time.Duration, error) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceDefault}, Data: map[string]string{"k": strings.Repeat("v", 64)}}
	began := time.Now()
	_, err := client.CoreV1().ConfigMaps(cm.Namespace).Create(ctx, cm, metav1.CreateOptions{})
	return time.Since(began), err
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p+99)/100 - 1
	return sorted[max(i, 0)].Round(10 * time.Microsecond)
}

// etcdMetric reads one of etcd's gauges from the server's components' metrics.
func etcdMetric(ctx context.Context, s *server.Server, name string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.MetricsAddr()+"/metrics/components", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("no %s in %s's metrics", name, s.MetricsAddr())
}
