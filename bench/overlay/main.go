// Command overlay measures pod-to-pod request latency through the vxlan overlay against the
// same requests between two pods of one node (issue 13, Performance: cross-node vs same-node
// pod-to-pod latency, p50/p99). It starts gantry server with node IPAM and the overlay (and
// no node of its own) and two agents, each on a "machine" of its own (a network namespace on
// a LAN bridge, internal/netnsmachines), then runs three pods of the fetch test image: a
// client and a same-node target on machine a, a cross-node target on machine b. The client
// pod times GETs to each target in alternating rounds, so both paths see the same load:
//
//   - on one kept-alive connection (the request's round trip);
//
//   - each on a new connection (TCP handshake + request).
//
//     make build && go run ./bench/overlay -gantry bin/gantry -rounds 10 -n 500
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gantry-run/gantry/bench/internal/server"
	"github.com/gantry-run/gantry/internal/freeport"
	"github.com/gantry-run/gantry/internal/netnsmachines"
)

// The networks of this benchmark: off the e2e tests' LAN (10.228.0/24 on gantry-ov0).
const (
	clusterCIDR = "10.224.0.0/14"
	vni         = 4229
)

var lan = netnsmachines.LAN{Bridge: "gantry-ov4", Prefix: "10.227.254", NetnsPrefix: "gantry-ovm-b"}

func main() {
	bin := flag.String("gantry", "bin/gantry", "the gantry binary")
	rounds := flag.Int("rounds", 10, "rounds; each times -n requests on each path, the paths' order alternating")
	n := flag.Int("n", 500, "requests per path per round")
	flag.Parse()
	if err := run(*bin, *rounds, *n); err != nil {
		fmt.Fprintln(os.Stderr, "bench/overlay:", err)
		os.Exit(1)
	}
}

type machine struct {
	netnsmachines.Machine
	node, bridge, dir string
	cmd               *exec.Cmd
}

func run(bin string, rounds, n int) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	tmp, err := server.TempDir("bench-overlay-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	names := []string{"a", "b"}
	defer func() { err = errors.Join(err, lan.Down(names...)) }()
	lanMachines, err := lan.Up(names...)
	if err != nil {
		return err
	}
	vxlan, err := freeport.Get(1)
	if err != nil {
		return err
	}
	srv, err := server.Start(ctx, server.Options{Bin: bin, DataDir: filepath.Join(tmp, "server"), Bridge: "gantry-ov1", PodCIDR: "10.224.0.0/24",
		KubeProxy: "off", NoMetrics: true,
		Args: []string{"--node=false", "--dashboard=false", "--bind-address=" + lan.HostIP(), "--advertise-address=" + lan.HostIP(),
			"--cluster-cidr=" + clusterCIDR}})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, srv.Stop()) }()
	cfg, err := clientcmd.BuildConfigFromFlags("", srv.Kubeconfig())
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var machines []*machine
	defer func() {
		for _, m := range machines {
			_ = m.cmd.Process.Kill()
			_ = m.cmd.Wait()
			if node, err := client.CoreV1().Nodes().Get(context.Background(), m.node, metav1.GetOptions{}); err == nil && node.Spec.PodCIDR != "" {
				_ = exec.Command("nsenter", "--net="+netnsmachines.Path(m.Netns), bin, "cleanup", "--data-dir", m.dir,
					"--bridge", m.bridge, "--pod-cidr", node.Spec.PodCIDR).Run()
			}
		}
	}()
	for i, lm := range lanMachines {
		m := &machine{Machine: lm, node: "bench-ov-" + lm.Name, bridge: fmt.Sprintf("gantry-ov%d", i+2), dir: filepath.Join(tmp, "agent-"+lm.Name)}
		m.cmd = exec.Command("nsenter", "--net="+netnsmachines.Path(lm.Netns), bin, "agent",
			"--server", cfg.Host, "--token-file", filepath.Join(tmp, "server", "token"), "--node-name", m.node,
			"--data-dir", m.dir, "--bridge", m.bridge, "--cluster-cidr", clusterCIDR,
			"--vxlan-vni", strconv.Itoa(vni), "--vxlan-port", strconv.Itoa(vxlan[0]), "--address", lm.IP,
			"--apiserver-port", strings.TrimPrefix(cfg.Host[strings.LastIndex(cfg.Host, ":"):], ":"),
			"--registry-addr", fmt.Sprintf("127.0.0.1:%d", srv.RegistryPort), "--registry-node-port", strconv.Itoa(srv.RegistryNodePort))
		log, err := os.Create(filepath.Join(tmp, "agent-"+lm.Name+".log"))
		if err != nil {
			return err
		}
		defer log.Close()
		m.cmd.Stdout, m.cmd.Stderr = log, log
		if err := m.cmd.Start(); err != nil {
			return err
		}
		machines = append(machines, m)
	}
	if err := waitNodes(ctx, client, machines); err != nil {
		return err
	}
	img, err := srv.BuildImage(ctx, "test/images/fetch", "fetch")
	if err != nil {
		return err
	}
	pods := map[string]string{"client": machines[0].node, "same": machines[0].node, "cross": machines[1].node}
	ips := map[string]string{}
	for name, node := range pods {
		if _, err := client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "bench-" + name},
			Spec: corev1.PodSpec{NodeSelector: map[string]string{corev1.LabelHostname: node},
				Containers: []corev1.Container{{Name: "fetch", Image: img}}},
		}, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	for name := range pods {
		if ips[name], err = waitRunning(ctx, client, "bench-"+name); err != nil {
			return err
		}
	}
	// The client pod is on machine a: reached from there.
	httpc := netnsmachines.Client(machines[0].Netns, 5*time.Minute)
	benchURL := func(target string, fresh bool) string {
		q := url.Values{"url": {"http://" + ips[target] + ":8080/peer"}, "n": {strconv.Itoa(n)}}
		if fresh {
			q.Set("new", "1")
		}
		return "http://" + ips["client"] + ":8080/bench?" + q.Encode()
	}
	// Warm-up: the pods' servers up, connections, caches, the overlay's neighbour entries.
	for _, target := range []string{"same", "cross"} {
		deadline := time.Now().Add(time.Minute)
		for {
			_, err := timings(ctx, httpc, benchURL(target, false))
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("warm-up to %s: %w", target, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	got := map[string][]time.Duration{}
	for r := range rounds {
		order := []string{"same", "cross"}
		if r%2 == 1 {
			order = []string{"cross", "same"}
		}
		for _, target := range order {
			for _, fresh := range []bool{false, true} {
				d, err := timings(ctx, httpc, benchURL(target, fresh))
				if err != nil {
					return fmt.Errorf("round %d, %s: %w", r, target, err)
				}
				key := target + map[bool]string{false: "/kept", true: "/new"}[fresh]
				got[key] = append(got[key], d...)
			}
		}
	}
	fmt.Printf("pod-to-pod GET (fetch image /peer), %d rounds × %d requests per path; client pod on %s (%s)\n", rounds, n, machines[0].node, ips["client"])
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "path\tconnection\trequests\tp50\tp99\tmean")
	for _, row := range []struct{ key, what, conn string }{
		{"same/kept", fmt.Sprintf("same node (baseline) → %s", ips["same"]), "kept alive"},
		{"cross/kept", fmt.Sprintf("cross node, vxlan → %s", ips["cross"]), "kept alive"},
		{"same/new", "same node (baseline)", "new each"},
		{"cross/new", "cross node, vxlan", "new each"},
	} {
		d := got[row.key]
		slices.Sort(d)
		var sum time.Duration
		for _, x := range d {
			sum += x
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", row.what, row.conn, len(d), us(d[len(d)/2]), us(d[len(d)*99/100]), us(sum/time.Duration(len(d))))
	}
	return w.Flush()
}

func us(d time.Duration) string { return strconv.FormatInt(d.Microseconds(), 10) + " µs" }

// timings asks the client pod to time requests and returns its timings.
func timings(ctx context.Context, c *http.Client, u string) ([]time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	var r struct {
		Nanos []int64 `json:"nanos"`
		Error string  `json:"error"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%d %.200q: %w", resp.StatusCode, b, err)
	}
	if r.Error != "" {
		return nil, errors.New(r.Error)
	}
	out := make([]time.Duration, len(r.Nanos))
	for i, x := range r.Nanos {
		out[i] = time.Duration(x)
	}
	return out, nil
}

// waitNodes waits for every machine's Node Ready with a range and the overlay's public IP.
func waitNodes(ctx context.Context, client kubernetes.Interface, machines []*machine) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		ready := 0
		for _, m := range machines {
			n, err := client.CoreV1().Nodes().Get(ctx, m.node, metav1.GetOptions{})
			if err != nil || n.Spec.PodCIDR == "" || n.Annotations["flannel.alpha.coreos.com/public-ip"] != m.IP {
				continue
			}
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready == len(machines) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the agents' nodes not Ready with the overlay: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitRunning waits for the pod to run and returns its IP.
func waitRunning(ctx context.Context, client kubernetes.Interface, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		p, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err == nil && p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
			return p.Status.PodIP, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("pod %s not running: %w", name, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
