package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-run/gantry/internal/freeport"
	"github.com/gantry-run/gantry/internal/poll"
)

// haServerArgs are the flags of one server of a cluster on this machine: its own data dir and
// ports, no node (so no bridge: the control plane is what is tested), no scheduled snapshots.
// ports: https, etcd client, etcd peer, webhook, registry, metrics, gateway, and (for a server
// of a cluster: extra has --cluster-init or --server) the autoscaler's endpoint; a ninth, if
// given, is the registry's for nodes (else none).
func haServerArgs(dataDir string, ports []int, extra ...string) []string {
	if len(ports) > 7 && slices.ContainsFunc(extra, func(a string) bool {
		return a == "--cluster-init" || a == "--server" || strings.HasPrefix(a, "--server=")
	}) {
		extra = append([]string{fmt.Sprintf("--autoscaler-port=%d", ports[7])}, extra...)
	}
	return append([]string{"server", "--data-dir", dataDir,
		fmt.Sprintf("--https-port=%d", ports[0]),
		fmt.Sprintf("--etcd-client-port=%d", ports[1]),
		fmt.Sprintf("--etcd-peer-port=%d", ports[2]),
		fmt.Sprintf("--webhook-port=%d", ports[3]),
		fmt.Sprintf("--registry-addr=127.0.0.1:%d", ports[4]),
		fmt.Sprintf("--metrics-address=127.0.0.1:%d", ports[5]),
		fmt.Sprintf("--http-port=%d", ports[6]),
		registryNodePortFlag(ports, 8),
		"--node=false", "--etcd-snapshot-interval=0"}, extra...)
}

func startHAServer(t *testing.T, extra ...string) *server {
	t.Helper()
	ports, err := freeport.Get(8)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := newDataDir(t)
	return launchServer(t, dataDir, ports, haServerArgs(dataDir, ports, extra...), nil)
}

func (s *server) url() string { return fmt.Sprintf("https://%s:%d", s.host(), s.ports[0]) }

// host is where the host reaches the server's listeners.
func (s *server) host() string {
	if s.addr == "" {
		return "127.0.0.1"
	}
	return s.addr
}

// etcdMetric reads one of the server's etcd gauges (etcd_server_is_leader, …) from its
// components' metrics.
func (s *server) etcdMetric(name string) (string, error) {
	return s.metricAt("/metrics/components", name)
}

// metricAt reads one sample (name with its labels, as exposed) from the server's metrics
// endpoint at path.
func (s *server) metricAt(path, sample string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s:%d%s", s.host(), s.ports[5], path), nil)
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
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("no %s in the metrics at %s", sample, path)
}

// TestHAControlPlane: three servers form one control plane (--cluster-init, then --server
// with the server token, each joined as an etcd learner and promoted); kill -9 of the server
// whose etcd member leads keeps the API writable through the other two, and what is written
// then is read from both, and from the killed server once it restarts. Refusals of a wrong token, another cluster's token and the agent
// token are one line each; a snapshot of the cluster restores onto a fresh single server.
func TestHAControlPlane(t *testing.T) {
	first := startHAServer(t, "--cluster-init")
	tokenFile := filepath.Join(first.dataDir, "server-token")
	tokenBytes, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatalf("--cluster-init wrote no server token: %v", err)
	}
	token := strings.TrimSpace(string(tokenBytes))

	t.Run("refusals", func(t *testing.T) {
		id, secret, _ := strings.Cut(token[strings.Index(token, "::")+2:], ".")
		otherCluster := "K10" + strings.Repeat("ab", 32) + "::" + id + "." + secret
		wrongSecret := token[:len(token)-1] + map[bool]string{true: "b", false: "a"}[strings.HasSuffix(token, "a")]
		for _, tc := range []struct {
			name, token, want string
		}{
			{"wrong token", wrongSecret, "the token is not valid for this server: its secret is wrong"},
			{"another cluster's token", otherCluster, "the token is another cluster's"},
			{"agent token", "@" + filepath.Join(first.dataDir, "token"), "the token is an agent token: it joins agents, not servers"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ports, err := freeport.Get(7)
				if err != nil {
					t.Fatal(err)
				}
				tokenFlag := "--token=" + tc.token
				if f, ok := strings.CutPrefix(tc.token, "@"); ok {
					tokenFlag = "--token-file=" + f
				}
				stderr, _ := runToFailure(t, haServerArgs(newDataDir(t), ports, "--server", first.url(), tokenFlag)...)
				wantOneLine(t, stderr, tc.want)
			})
		}
		for _, tc := range []struct {
			name string
			args []string
			want string
		}{
			{"cluster-init and server", []string{"--cluster-init", "--server", first.url(), "--token", token}, "--cluster-init and --server: give one"},
			{"server without a token", []string{"--server", first.url()}, "--server: needs --token or --token-file"},
			{"token without a server", []string{"--token", token}, "--token: needs --server"},
			{"server not https", []string{"--server", "http://127.0.0.1:1", "--token", token}, `--server: "http://127.0.0.1:1" is not an https:// URL`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ports, err := freeport.Get(7)
				if err != nil {
					t.Fatal(err)
				}
				stderr, _ := runToFailure(t, haServerArgs(newDataDir(t), ports, tc.args...)...)
				wantOneLine(t, stderr, tc.want)
			})
		}
	})

	// Each joins through a different server: any server of the cluster lets another join.
	second := startHAServer(t, "--server", first.url(), "--token-file", tokenFile)
	third := startHAServer(t, "--server", second.url(), "--token", token)
	servers := []*server{first, second, third}
	for i, s := range servers {
		if v, err := s.etcdMetric("etcd_server_is_learner"); err != nil || v != "0" {
			t.Fatalf("server %d: etcd_server_is_learner %q, %v: want a promoted member", i, v, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(third.dataDir, "token")); err != nil || !strings.HasPrefix(string(b), token[:strings.Index(token, "::")]) {
		t.Errorf("the joined server's agent token %q, %v: want the cluster's", b, err)
	}
	// The controller-manager, the scheduler and the serving controllers elect one leader.
	for _, lease := range []string{"kube-controller-manager", "kube-scheduler", "gantry-serving-controllers", "gantry-join-approver"} {
		third.eventually("lease "+lease, func(out string) bool { return strings.TrimSpace(out) != "" },
			"-n", "kube-system", "get", "lease", lease, "-o", "jsonpath={.spec.holderIdentity}")
	}
	first.mustKubectl("create", "configmap", "before-kill", "--from-literal=at=before")

	var leader *server
	var rest []*server
	poll.Until(t, "one etcd leader", 30*time.Second, func(context.Context) (bool, error) {
		leader, rest = nil, nil
		for _, s := range servers {
			v, err := s.etcdMetric("etcd_server_is_leader")
			if err != nil {
				return false, err
			}
			if v == "1" && leader == nil {
				leader = s
			} else {
				rest = append(rest, s)
			}
		}
		return leader != nil, nil
	})
	leader.kill()

	// The two others elect a new leader and keep the API writable.
	var created time.Time
	killed := time.Now()
	poll.Until(t, "a ConfigMap created after the kill", 60*time.Second, func(context.Context) (bool, error) {
		if _, err := rest[0].kubectl("create", "configmap", "after-kill", "--from-literal=at=after"); err != nil {
			if strings.Contains(err.Error(), "AlreadyExists") {
				return true, nil
			}
			return false, err
		}
		created = time.Now()
		return true, nil
	})
	t.Logf("API writable %s after kill -9 of the etcd leader's server", created.Sub(killed).Round(time.Millisecond))
	for _, s := range rest {
		for _, cm := range []string{"before-kill", "after-kill"} {
			s.eventually(cm+" on "+s.url(), func(out string) bool { return out != "" },
				"get", "configmap", cm, "-o", "jsonpath={.data.at}")
		}
	}

	// The killed server restarts from its data dir and catches up as a member again.
	back := launchServer(t, leader.dataDir, leader.ports, leader.args, nil)
	back.eventually("after-kill on the restarted server", func(out string) bool { return out == "after" },
		"get", "configmap", "after-kill", "-o", "jsonpath={.data.at}")

	t.Run("snapshot of the cluster restores onto a fresh single server", func(t *testing.T) {
		src := rest[0]
		out := gantry(t, "etcd-snapshot", "save", "--data-dir", src.dataDir, "--etcd-client-port", fmt.Sprint(src.ports[1]), "--name", "ha")
		path, _, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(out), "saved "), " ")
		if !ok || !strings.HasPrefix(out, "saved ") {
			t.Fatalf("etcd-snapshot save printed %q", out)
		}
		ports, err := freeport.Get(7)
		if err != nil {
			t.Fatal(err)
		}
		fresh := newDataDir(t)
		gantry(t, "etcd-snapshot", "restore", path, "--data-dir", fresh, "--etcd-peer-port", fmt.Sprint(ports[2]))
		s := launchServer(t, fresh, ports, haServerArgs(fresh, ports), nil)
		for _, cm := range []string{"before-kill", "after-kill"} {
			s.eventually(cm+" restored", func(out string) bool { return out != "" },
				"get", "configmap", cm, "-o", "jsonpath={.data.at}")
		}
		if v, err := s.etcdMetric("etcd_server_is_leader"); err != nil || v != "1" {
			t.Errorf("the restored server's etcd_server_is_leader %q, %v: want a single member that leads", v, err)
		}
		s.stop()
	})
	// One server stops cleanly while the others keep the quorum. (Stopping them all, the last
	// ones lose it: their API servers cannot write their last records, and their stop ends at
	// its bound. The test's cleanup kills them.)
	back.stop()
	rest[0].mustKubectl("create", "configmap", "after-stop")
}

// TestAgentFailsOver: an agent given the three servers of a cluster joins through its own load
// balancer; after kill -9 of the server it used, it renews its node's lease through another,
// and its node stays Ready.
func TestAgentFailsOver(t *testing.T) {
	requireNode(t)
	const bridge, podCIDR = "gantry-ha0", "10.230.0.0/16"
	first := startHAServer(t, "--cluster-init")
	tokenFile := filepath.Join(first.dataDir, "server-token")
	second := startHAServer(t, "--server", first.url(), "--token-file", tokenFile)
	third := startHAServer(t, "--server", first.url(), "--token-file", tokenFile)

	kubeletPort, err := freeport.Get(1)
	if err != nil {
		t.Fatal(err)
	}
	agentDir := filepath.Join(t.TempDir(), "agent")
	agent := exec.Command(gantryBin, "agent", "--server", strings.Join([]string{first.url(), second.url(), third.url()}, ","),
		"--token-file", filepath.Join(first.dataDir, "token"), "--node-name", "ha-worker", "--data-dir", agentDir,
		"--bridge", bridge, "--pod-cidr", podCIDR, "--kubelet-port", strconv.Itoa(kubeletPort[0]),
		"--apiserver-port", strconv.Itoa(first.ports[0]), "--address", "127.0.0.1")
	var out syncBuffer
	agent.Stdout, agent.Stderr = &out, &out
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = agent.Process.Kill()
		_ = agent.Wait()
		_ = exec.Command(gantryBin, "cleanup", "--data-dir", agentDir, "--bridge", bridge, "--pod-cidr", podCIDR).Run()
		_ = exec.Command("ip", "link", "del", bridge).Run()
		if t.Failed() {
			t.Logf("the agent's output:\n%s", out.String())
		}
	})
	second.eventually("node ha-worker Ready", func(out string) bool { return out == "True" },
		"get", "node", "ha-worker", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)

	// The agent's load balancer uses the first server while it answers.
	first.kill()
	killed := time.Now()
	second.eventually("the node's lease renewed after the kill", func(out string) bool {
		renewed, err := time.Parse(time.RFC3339Nano, out)
		return err == nil && renewed.After(killed)
	}, "-n", "kube-node-lease", "get", "lease", "ha-worker", "-o", "jsonpath={.spec.renewTime}")
	t.Logf("lease renewed through another server %s after kill -9", time.Since(killed).Round(time.Millisecond))
	if !strings.Contains(out.String(), "server changed") {
		t.Errorf("the agent does not say it changed servers:\n%s", out.String())
	}
	third.eventually("node ha-worker still Ready", func(out string) bool { return out == "True" },
		"get", "node", "ha-worker", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
}

// TestAgentLearnsServers: an agent given only the first server of three (each in a network
// namespace of its own, advertising its own address) learns the other two from the kubernetes
// EndpointSlice; after kill -9 of the first it renews its node's lease through another, and
// the node stays Ready. gantry kubectl with the killed server's data dir reaches the others
// through the list that server kept in <data-dir>/api-servers.
func TestAgentLearnsServers(t *testing.T) {
	requireNode(t)
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	const agentBridge, podCIDR = "gantry-cfo1", "10.242.64.0/18"
	first, second, third := startHAMachines(t, "gantry-cfo0", "10.242.0.", "vgantry-cfo",
		[]string{"gantry-cfo-a", "gantry-cfo-b", "gantry-cfo-c"})
	const prefix = "10.242.0."

	kubeletPort, err := freeport.Get(1)
	if err != nil {
		t.Fatal(err)
	}
	agentDir := filepath.Join(t.TempDir(), "agent")
	var out syncBuffer
	var agent *exec.Cmd
	startAgent := func() {
		t.Helper()
		agent = exec.Command(gantryBin, "agent", "--server", first.url(),
			"--token-file", filepath.Join(first.dataDir, "token"), "--node-name", "cfo-worker", "--data-dir", agentDir,
			"--bridge", agentBridge, "--pod-cidr", podCIDR, "--kubelet-port", strconv.Itoa(kubeletPort[0]),
			"--address", prefix+"254")
		agent.Stdout, agent.Stderr = &out, &out
		if err := agent.Start(); err != nil {
			t.Fatal(err)
		}
	}
	startAgent()
	t.Cleanup(func() {
		_ = agent.Process.Kill()
		_ = agent.Wait()
		_ = exec.Command(gantryBin, "cleanup", "--data-dir", agentDir, "--bridge", agentBridge, "--pod-cidr", podCIDR).Run()
		_ = exec.Command("ip", "link", "del", agentBridge).Run()
		if t.Failed() {
			t.Logf("the agent's output:\n%s", out.String())
		}
	})
	second.eventually("node cfo-worker Ready", func(out string) bool { return out == "True" },
		"get", "node", "cfo-worker", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	learned := time.Now()
	poll.Until(t, "the agent lists the three servers", 60*time.Second, func(context.Context) (bool, error) {
		for line := range strings.Lines(out.String()) {
			if strings.Contains(line, "msg=servers") && strings.Contains(line, prefix+"2:6443") && strings.Contains(line, prefix+"3:6443") {
				t.Logf("%s after Ready: %s", time.Since(learned).Round(time.Second), strings.TrimSpace(line))
				return true, nil
			}
		}
		return false, nil
	})

	// Each server keeps the list in its data dir, for gantry kubectl.
	poll.Until(t, "the first server's api-servers file lists the three", 60*time.Second, func(context.Context) (bool, error) {
		data, err := os.ReadFile(filepath.Join(first.dataDir, "api-servers"))
		return err == nil && strings.Count(string(data), ":6443\n") == 3, fmt.Errorf("%q: %w", data, err)
	})

	first.kill()
	killed := time.Now()
	// gantry kubectl on the dead server's machine, with its data dir, reaches another server.
	out1, err := first.kubectl("get", "node", "cfo-worker", "-o", "name")
	if err != nil || strings.TrimSpace(out1) != "node/cfo-worker" {
		t.Errorf("gantry kubectl with the killed server's data dir: %q, %v", out1, err)
	}
	t.Logf("gantry kubectl through the other servers answered %s after kill -9 of its own", time.Since(killed).Round(time.Millisecond))
	second.eventually("the node's lease renewed after the kill", func(out string) bool {
		renewed, err := time.Parse(time.RFC3339Nano, out)
		return err == nil && renewed.After(killed)
	}, "-n", "kube-node-lease", "get", "lease", "cfo-worker", "-o", "jsonpath={.spec.renewTime}")
	t.Logf("lease renewed through a learned server %s after kill -9 of the only one given", time.Since(killed).Round(time.Millisecond))
	if !strings.Contains(out.String(), "server changed") {
		t.Errorf("the agent does not say it changed servers:\n%s", out.String())
	}
	third.eventually("node cfo-worker still Ready", func(out string) bool { return out == "True" },
		"get", "node", "cfo-worker", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)

	// Restarted while the one server it is given is down, the agent starts from the list it
	// kept in its data dir.
	if err := agent.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := agent.Wait(); err != nil {
		t.Fatalf("the agent after SIGTERM: %v", err)
	}
	restarted := time.Now()
	startAgent()
	second.eventually("the node's lease renewed by the restarted agent", func(out string) bool {
		renewed, err := time.Parse(time.RFC3339Nano, out)
		return err == nil && renewed.After(restarted)
	}, "-n", "kube-node-lease", "get", "lease", "cfo-worker", "-o", "jsonpath={.spec.renewTime}")
	t.Logf("the agent restarted with its one server down renewed its lease %s after its start", time.Since(restarted).Round(time.Millisecond))
	if n := strings.Count(out.String(), "server changed"); n < 2 {
		t.Errorf("the restarted agent did not say it changed servers (%d lines):\n%s", n, out.String())
	}
}

// syncBuffer is a bytes.Buffer that a process writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestHAControlPlaneAcrossMachines: three servers, each in a network namespace of its own (a
// "machine") on one bridge, on the default ports, advertising their own addresses: etcd's
// members reach each other at those addresses, and kill -9 of the etcd leader's server keeps
// the API writable through the others.
func TestHAControlPlaneAcrossMachines(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	first, second, third := startHAMachines(t, "gantry-ha1", "10.231.0.", "vgantry-ha",
		[]string{"gantry-ha-a", "gantry-ha-b", "gantry-ha-c"})
	servers := []*server{first, second, third}

	var leader *server
	var rest []*server
	for _, s := range servers {
		v, err := s.etcdMetric("etcd_server_is_leader")
		if err != nil {
			t.Fatal(err)
		}
		if v == "1" && leader == nil {
			leader = s
		} else {
			rest = append(rest, s)
		}
	}
	if leader == nil {
		t.Fatal("no etcd leader among the three")
	}
	leader.kill()
	poll.Until(t, "a ConfigMap created after the kill", 60*time.Second, func(context.Context) (bool, error) {
		_, err := rest[0].kubectl("create", "configmap", "after-kill", "--from-literal=at=after")
		return err == nil || strings.Contains(err.Error(), "AlreadyExists"), err
	})
	rest[1].eventually("after-kill on the other server", func(out string) bool { return out == "after" },
		"get", "configmap", "after-kill", "-o", "jsonpath={.data.at}")
}

// TestHAScaleFromZeroThroughAnyServer: three servers (no node of their own) and an agent; a
// revision at zero pods is woken by a request through each server that does not lead the
// serving controllers: its activator asks the leader's autoscaler over the autoscaler's
// endpoint (the leader found through the Lease gantry-serving-controllers), and the request is
// answered within the usual cold start. After kill -9 of the leader, a request through a
// surviving server is answered once another server leads.
func TestHAScaleFromZeroThroughAnyServer(t *testing.T) {
	requireNode(t)
	const bridge, podCIDR = "gantry-agl1", "10.238.0.0/16"
	first := startHAServer(t, "--cluster-init")
	tokenFile := filepath.Join(first.dataDir, "server-token")
	servers := []*server{first,
		startHAServer(t, "--server", first.url(), "--token-file", tokenFile),
		startHAServer(t, "--server", first.url(), "--token-file", tokenFile),
	}
	kubeletPort, err := freeport.Get(1)
	if err != nil {
		t.Fatal(err)
	}
	agentDir := filepath.Join(t.TempDir(), "agent")
	urls := []string{servers[0].url(), servers[1].url(), servers[2].url()}
	agent := exec.Command(gantryBin, "agent", "--server", strings.Join(urls, ","),
		"--token-file", filepath.Join(first.dataDir, "token"), "--node-name", "ha-agl-worker", "--data-dir", agentDir,
		"--bridge", bridge, "--pod-cidr", podCIDR, "--kubelet-port", strconv.Itoa(kubeletPort[0]),
		"--apiserver-port", strconv.Itoa(first.ports[0]), "--address", "127.0.0.1")
	var out syncBuffer
	agent.Stdout, agent.Stderr = &out, &out
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = agent.Process.Kill()
		_ = agent.Wait()
		_ = exec.Command(gantryBin, "cleanup", "--data-dir", agentDir, "--bridge", bridge, "--pod-cidr", podCIDR).Run()
		_ = exec.Command("ip", "link", "del", bridge).Run()
		if t.Failed() {
			t.Logf("the agent's output:\n%s", tail(out.String(), 8<<10))
		}
	})
	first.eventually("node ha-agl-worker Ready", func(out string) bool { return out == "True" },
		"get", "node", "ha-agl-worker", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)

	// The leader: the server whose autoscaler endpoint the Lease's holder names.
	var leader *server
	var others []*server
	first.eventually("the serving leader's Lease naming an autoscaler endpoint", func(out string) bool {
		leader, others = nil, nil
		for _, s := range servers {
			if strings.HasSuffix(out, " https://127.0.0.1:"+strconv.Itoa(s.ports[7])) {
				leader = s
			} else {
				others = append(others, s)
			}
		}
		return leader != nil
	}, "-n", "kube-system", "get", "lease", "gantry-serving-controllers", "-o", "jsonpath={.spec.holderIdentity}")
	t.Logf("the serving leader is the server with --https-port %d", leader.ports[0])

	img := buildImage(t, first.ports[4], "hello")
	first.mustKubectl("-n", "gantry-system", "patch", "configmap", "config-autoscaler", "--type=merge", "-p", `{"data":{"scale-to-zero-grace-period":"6s"}}`)
	manifest := filepath.Join(t.TempDir(), "wake.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: wake
spec:
  template:
    metadata:
      annotations: {autoscaling.knative.dev/window: "6s"}
    spec:
      containers:
        - image: `+img+`
          env: [{name: TARGET, value: from-zero}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	first.mustKubectl("apply", "-f", manifest)
	waitLong(t, first, 3*time.Minute, "the wake service Ready", func(out string) bool { return out == "True" },
		"get", "ksvc", "wake", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)

	atZero := func(kubectl *server) {
		t.Helper()
		waitLong(t, kubectl, 3*time.Minute, "wake-00001 at zero pods", func(out string) bool { return out == "0" },
			"get", "deployment", "wake-00001-deployment", "-o", "jsonpath={.spec.replicas}")
		// And its last pod gone: one still draining may answer a request sent now, which
		// would then not be a cold start.
		waitLong(t, kubectl, 2*time.Minute, "no pod of wake-00001 left", func(out string) bool { return out == "" },
			"get", "pods", "-l", "serving.knative.dev/revision=wake-00001", "-o", "name")
	}
	// fromZero sends one request through via's gateway and returns how long its answer took.
	fromZero := func(what string, via *server, timeout time.Duration) time.Duration {
		t.Helper()
		url := "http://wake.default.localhost:" + strconv.Itoa(via.ports[6]) + "/"
		began := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		client := &http.Client{Timeout: timeout, Transport: localhostClient.Transport}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: GET %s: %v", what, url, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "Hello from-zero!" {
			t.Fatalf("%s: GET %s: %d %q", what, url, resp.StatusCode, body)
		}
		took := time.Since(began)
		t.Logf("%s (--http-port %d): 200 in %s", what, via.ports[6], took.Round(time.Millisecond))
		return took
	}
	for round, via := range others {
		atZero(first)
		what := fmt.Sprintf("round %d: from zero through the gateway of a server that does not lead", round)
		if took := fromZero(what, via, time.Minute); took > 20*time.Second {
			t.Errorf("%s: the cold start took %s, want the usual few seconds", what, took)
		}
		// The wake-up went over the autoscaler endpoint: the server's relay counted it.
		if v, err := via.metric(`gantry_autoscaler_relay_requests_total{kind="scale_from_zero",result="ok"}`); err != nil || v == "0" {
			t.Errorf("round %d: the server's relay to the leader: %q %v, want wake-ups sent", round, v, err)
		}
	}
	// The leader calls its own autoscaler in-process.
	if v, err := leader.metric(`gantry_autoscaler_relay_requests_total{kind="scale_from_zero",result="ok"}`); err == nil {
		t.Errorf("the leader sent wake-ups over the network: %s", v)
	}

	// The leader dies (kill -9) with the revision at zero: a request through a surviving server
	// waits while the leader changes (the Lease expires within 20 s), and the new leader, which
	// gets the held request's load, wakes the revision.
	atZero(others[0])
	leader.kill()
	fromZero("after kill -9 of the serving leader, from zero through a surviving server", others[1], 90*time.Second)
	others[0].eventually("a surviving server leads", func(out string) bool {
		return strings.HasSuffix(out, " https://127.0.0.1:"+strconv.Itoa(others[0].ports[7])) ||
			strings.HasSuffix(out, " https://127.0.0.1:"+strconv.Itoa(others[1].ports[7]))
	}, "-n", "kube-system", "get", "lease", "gantry-serving-controllers", "-o", "jsonpath={.spec.holderIdentity}")
}

// metric reads one sample (name with its labels, as exposed) of the server's Gantry metrics.
func (s *server) metric(sample string) (string, error) { return s.metricAt("/metrics", sample) }

// startHAMachines starts three servers of one cluster, each in a network namespace of its own
// (a "machine", its eth0 at prefix+1..3 on bridge, which the host reaches at prefix+254), on
// the default ports, advertising their own addresses; --node=false.
func startHAMachines(t *testing.T, bridge, prefix, vethPrefix string, machines []string) (first, second, third *server) {
	t.Helper()
	ipCmd := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		for _, ns := range machines {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
		_ = exec.Command("ip", "link", "del", bridge).Run()
	})
	ipCmd("link", "add", bridge, "type", "bridge")
	ipCmd("addr", "add", prefix+"254/24", "dev", bridge) // the host reaches the machines
	ipCmd("link", "set", bridge, "up")
	for i, ns := range machines {
		veth := fmt.Sprintf("%s%d", vethPrefix, i)
		ipCmd("netns", "add", ns)
		ipCmd("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
		ipCmd("link", "set", veth, "master", bridge, "up")
		ipCmd("-n", ns, "addr", "add", fmt.Sprintf("%s%d/24", prefix, i+1), "dev", "eth0")
		ipCmd("-n", ns, "link", "set", "eth0", "up")
		ipCmd("-n", ns, "link", "set", "lo", "up")
	}
	// Every machine on the defaults: https 6443, etcd 2379/2380, metrics 9095 (on its address).
	defaults := []int{6443, 2379, 2380, 6444, 5000, 9095, 8080}
	start := func(i int, extra ...string) *server {
		t.Helper()
		ip := fmt.Sprintf("%s%d", prefix, i+1)
		dataDir := newDataDir(t)
		args := append([]string{"server", "--data-dir", dataDir, "--advertise-address", ip, "--bind-address", "0.0.0.0",
			"--metrics-address", ip + ":9095", "--node=false", "--etcd-snapshot-interval=0"}, extra...)
		s := launchServerIn(t, machines[i], dataDir, defaults, args, nil)
		s.addr = ip
		return s
	}
	first = start(0, "--cluster-init")
	token := filepath.Join(first.dataDir, "server-token")
	second = start(1, "--server", first.url(), "--token-file", token)
	third = start(2, "--server", second.url(), "--token-file", token)
	return first, second, third
}
