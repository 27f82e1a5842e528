package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-run/gantry/internal/freeport"
	"github.com/gantry-run/gantry/internal/netnsmachines"
	"github.com/gantry-run/gantry/internal/poll"
)

// The overlay's cluster in these tests: node IPAM's range, the server's node's block of it,
// and the overlay's VXLAN network identifier (its device is flannel.<vni> on each machine).
const (
	ovClusterCIDR   = "10.224.0.0/14"
	ovServerPodCIDR = "10.224.0.0/24"
	ovServerBridge  = "gantry-ov1"
	ovVNI           = 4228
	ovDevice        = "flannel.4228"
)

// ovLAN is the machines' LAN: the host holds 10.228.0.1, machine i 10.228.0.(i+2).
var ovLAN = netnsmachines.LAN{Bridge: "gantry-ov0", Prefix: "10.228.0", NetnsPrefix: "gantry-ovm-"}

// ovMachine is an agent's machine: its namespace, LAN address and pods' bridge.
type ovMachine struct {
	name, ns, ip, bridge string
}

// overlayCluster is a server on the host and an agent on each machine, joined by the overlay.
type overlayCluster struct {
	s         *server
	ports     []int
	machines  []ovMachine
	server    string // the API server's URL
	token     string // the join token's file
	vxlanPort int
}

// startOverlayCluster starts gantry server on the host with node IPAM and the overlay, and
// a gantry agent in each of n network namespaces ("machines" a, b, …), and waits for every
// node Ready with its range and its overlay annotations.
func startOverlayCluster(t *testing.T, n int) *overlayCluster {
	t.Helper()
	requireNode(t)
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("needs nsenter (util-linux)")
	}
	var names []string
	for i := range n {
		names = append(names, string(rune('a'+i)))
	}
	// Registered first, so it runs last: the processes in the namespaces stop before.
	t.Cleanup(func() {
		if err := ovLAN.Down(names...); err != nil {
			t.Errorf("removing the machines: %v", err)
		}
	})
	lan, err := ovLAN.Up(names...)
	if err != nil {
		t.Fatal(err)
	}
	var machines []ovMachine
	for i, m := range lan {
		machines = append(machines, ovMachine{name: "ov-" + m.Name, ns: m.Netns, ip: m.IP, bridge: fmt.Sprintf("gantry-ov%d", i+2)})
	}
	dataDir := newDataDir(t)
	ports := freePorts(t)
	vxlan, err := freeport.Get(1)
	if err != nil {
		t.Fatal(err)
	}
	// The API server on the host's LAN address, where the agents reach it; kube-proxy off:
	// its rules are one per host, and ClusterIPs are not what these tests look at.
	// Once the server is killed, gantry cleanup removes the overlay's device with the sandboxes.
	s := launchServer(t, dataDir, ports, append(serverArgs(dataDir, ports), "--bind-address="+ovLAN.HostIP(), "--advertise-address="+ovLAN.HostIP(),
		"--bridge="+ovServerBridge, "--pod-cidr="+ovServerPodCIDR, "--cluster-cidr="+ovClusterCIDR,
		"--vxlan-vni="+strconv.Itoa(ovVNI), "--vxlan-port="+strconv.Itoa(vxlan[0]), "--kube-proxy=off"), func() {
		out, err := exec.Command(gantryBin, "cleanup", "--data-dir", dataDir, "--bridge", ovServerBridge, "--pod-cidr", ovServerPodCIDR).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "removed the overlay's device "+ovDevice) {
			t.Errorf("gantry cleanup after the server: %v\n%s", err, out)
		}
		if exec.Command("ip", "link", "show", ovDevice).Run() == nil {
			t.Errorf("%s is still there after gantry cleanup", ovDevice)
			_ = exec.Command("ip", "link", "del", ovDevice).Run()
		}
		_ = exec.Command("ip", "link", "del", ovServerBridge).Run()
	})
	server := fmt.Sprintf("https://%s:%d", ovLAN.HostIP(), ports[0])
	for _, m := range machines {
		agentDir := filepath.Join(t.TempDir(), "agent")
		// nsenter --net, not ip netns exec: that one mounts a /sys of its own, without the
		// cgroup hierarchy the sandboxes need.
		cmd := exec.Command("nsenter", "--net="+netnsmachines.Path(m.ns), gantryBin, "agent",
			"--server", server, "--token-file", filepath.Join(dataDir, "token"), "--node-name", m.name,
			"--data-dir", agentDir, "--bridge", m.bridge, "--cluster-cidr", ovClusterCIDR,
			"--vxlan-vni", strconv.Itoa(ovVNI), "--vxlan-port", strconv.Itoa(vxlan[0]),
			"--address", m.ip, "--apiserver-port", strconv.Itoa(ports[0]),
			// The images pods name with the server's loopback registry come from the
			// server's registry for nodes: the machine does not reach the host's loopback.
			"--registry-addr", fmt.Sprintf("127.0.0.1:%d", ports[4]), "--registry-node-port", strconv.Itoa(ports[7]))
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			// The pods' sandboxes are processes of the host: stop them; the namespace's
			// links and rules go with it.
			cidr, _ := s.kubectl("get", "node", m.name, "-o", "jsonpath={.spec.podCIDR}")
			if cidr != "" {
				out, err := exec.Command("nsenter", "--net="+netnsmachines.Path(m.ns), gantryBin, "cleanup", "--data-dir", agentDir,
					"--bridge", m.bridge, "--pod-cidr", cidr).CombinedOutput()
				if err != nil {
					t.Errorf("gantry cleanup after agent %s: %v\n%s", m.name, err, out)
				}
			}
			if t.Failed() {
				t.Logf("agent %s's output (last 8 KiB):\n%s", m.name, tail(out.String(), 8<<10))
			}
		})
	}
	c := &overlayCluster{s: s, ports: ports, machines: machines, server: server, token: filepath.Join(dataDir, "token"), vxlanPort: vxlan[0]}
	want := n + 1
	waitLong(t, s, 2*time.Minute, "every node Ready with a range of node IPAM and the overlay's public IP", func(out string) bool {
		ready := 0
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 4 && f[3] == "True" && strings.HasPrefix(f[1], "10.224.") && strings.HasPrefix(f[2], ovLAN.Prefix+".") {
				ready++
			}
		}
		return ready == want
	}, "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.podCIDR} {.metadata.annotations.flannel\.alpha\.coreos\.com/public-ip} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
	return c
}

// checkAgentsReadTheServersRegistry: the agents' pods run an image that is only in the server's
// embedded registry, on the host's loopback, which the machines do not reach; the agents read it
// through the server's registry for nodes, which answers no client without a node's certificate.
func checkAgentsReadTheServersRegistry(t *testing.T, c *overlayCluster) {
	t.Helper()
	ns := c.machines[0].ns
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	loopback := fmt.Sprintf("http://127.0.0.1:%d/v2/", c.ports[4])
	if _, err := netnsmachines.Client(ns, 2*time.Second).Get(loopback); err == nil {
		t.Errorf("machine %s reaches the server's loopback registry at %s: the pull proves nothing", ns, loopback)
	}
	forNodes := fmt.Sprintf("https://%s:%d/v2/", ovLAN.HostIP(), c.ports[7])
	anonymous := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return netnsmachines.DialContext(ctx, ns, network, addr)
		},
		// Not trusting the server is not what is tested: the server's asking for a client
		// certificate is.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, forNodes, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := anonymous.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Errorf("GET %s from machine %s without a client certificate: %s, want the handshake refused", forNodes, ns, resp.Status)
	} else {
		t.Logf("the registry for nodes refuses a client without a certificate: %v", err)
	}
}

// ns is the namespace of node's machine ("" for the server's, the host).
func (c *overlayCluster) ns(node string) string {
	for _, m := range c.machines {
		if m.name == node {
			return m.ns
		}
	}
	return ""
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// fetchResult is the fetch test image's answer.
type fetchResult struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
	Error  string `json:"error"`
}

// podFetch asks the fetch pod at ip (reached from the machine ns) to GET target, and
// returns what it got.
func podFetch(ctx context.Context, ns, ip, target string) (fetchResult, error) {
	u := "http://" + net.JoinHostPort(ip, "8080") + "/fetch?url=" + url.QueryEscape(target)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fetchResult{}, err
	}
	resp, err := netnsmachines.Client(ns, 15*time.Second).Do(req)
	if err != nil {
		return fetchResult{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fetchResult{}, err
	}
	var r fetchResult
	if err := json.Unmarshal(b, &r); err != nil {
		return fetchResult{}, fmt.Errorf("%d %q: %w", resp.StatusCode, b, err)
	}
	return r, nil
}

// TestOverlayPodsReachPodsOnOtherMachines: a server and two agents, each agent on a
// "machine" of its own (a network namespace on a LAN bridge, with no route to another
// machine's pods but the overlay's): node IPAM gives every node its range, and a pod on each
// node reaches the pods on the two others by pod IP, through the vxlan overlay, which keeps
// the caller's address (no masquerade between pods).
func TestOverlayPodsReachPodsOnOtherMachines(t *testing.T) {
	c := startOverlayCluster(t, 2)
	s := c.s
	img := buildImage(t, c.ports[4], "fetch")
	nodes := []string{"gantry", "ov-a", "ov-b"}
	for _, node := range nodes {
		manifest := filepath.Join(t.TempDir(), node+".yaml")
		if err := os.WriteFile(manifest, []byte(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: fetch-%s
  labels:
    app: fetch-%[1]s
spec:
  nodeSelector:
    kubernetes.io/hostname: %s
  containers:
    - name: fetch
      image: %s
`, node, node, img)), 0o600); err != nil {
			t.Fatal(err)
		}
		s.mustKubectl("apply", "-f", manifest)
	}
	ips := map[string]string{}
	waitLong(t, s, 3*time.Minute, "a running fetch pod on every node", func(out string) bool {
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[2] == "Running" {
				ips[f[0]] = f[1]
			}
		}
		return len(ips) == len(nodes)
	}, "get", "pods", "-o", `jsonpath={range .items[*]}{.spec.nodeName} {.status.podIP} {.status.phase}{"\n"}{end}`)
	checkAgentsReadTheServersRegistry(t, c)
	for _, node := range nodes {
		cidr := s.mustKubectl("get", "node", node, "-o", "jsonpath={.spec.podCIDR}")
		_, n, err := net.ParseCIDR(cidr)
		if err != nil || !n.Contains(net.ParseIP(ips[node])) {
			t.Errorf("the pod on %s has %s, not in its node's range %q", node, ips[node], cidr)
		}
	}
	if got := s.mustKubectl("get", "node", "gantry", "-o", "jsonpath={.spec.podCIDR}"); got != ovServerPodCIDR {
		t.Errorf("the server's node has the range %q, want its --pod-cidr %s", got, ovServerPodCIDR)
	}

	// Each machine reaches the others' pods through the overlay's device, and only through it.
	for _, m := range c.machines {
		for node, ip := range ips {
			if node == m.name {
				continue
			}
			out, err := exec.Command("ip", "-n", m.ns, "route", "get", ip).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "dev "+ovDevice) {
				t.Errorf("%s's route to the pod on %s (%s) is not the overlay's: %s %v", m.name, node, ip, out, err)
			}
		}
	}

	for _, from := range nodes {
		for _, to := range nodes {
			if from == to {
				continue
			}
			what := fmt.Sprintf("the pod on %s (%s) calls the pod on %s (%s) by its IP", from, ips[from], to, ips[to])
			poll.Until(t, what, 30*time.Second, func(ctx context.Context) (bool, error) {
				r, err := podFetch(ctx, c.ns(from), ips[from], "http://"+net.JoinHostPort(ips[to], "8080")+"/peer")
				if err != nil {
					return false, err
				}
				if r.Status != http.StatusOK || r.Error != "" {
					return false, fmt.Errorf("the pod got %d %q %s", r.Status, r.Body, r.Error)
				}
				var peer fetchResult
				if err := json.Unmarshal([]byte(r.Body), &peer); err != nil {
					return false, poll.Stop(fmt.Errorf("the called pod answered %q: %w", r.Body, err))
				}
				if peer.Body != ips[from] {
					return false, poll.Stop(fmt.Errorf("the called pod saw the caller as %q, not its pod IP %s (masqueraded?)", peer.Body, ips[from]))
				}
				t.Logf("%s → %s: answered, the callee saw the caller as %s", from, to, peer.Body)
				return true, nil
			})
		}
	}

	// An agent given a --pod-cidr other than the one node IPAM gives its node is refused.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+netnsmachines.Path(c.machines[0].ns), gantryBin, "agent",
		"--server", c.server, "--token-file", c.token, "--node-name", "ov-x", "--data-dir", filepath.Join(t.TempDir(), "x"),
		"--bridge", "gantry-ov4", "--cluster-cidr", ovClusterCIDR, "--pod-cidr", "10.224.200.0/24",
		"--vxlan-vni", strconv.Itoa(ovVNI), "--vxlan-port", strconv.Itoa(c.vxlanPort),
		"--address", c.machines[0].ip, "--kubelet-port", "10260").CombinedOutput()
	if last := lastLine(string(out)); err == nil || !strings.Contains(last, "--pod-cidr 10.224.200.0/24: the cluster's node IPAM gave this node 10.224.") {
		t.Errorf("an agent with another --pod-cidr than its node's: %v, last line %q", err, last)
	}

	// A ClusterIP Service whose pod is on ov-b answers a pod on ov-a: the agents' kube-proxy
	// (each in its machine's namespace) routes it, through the overlay.
	svc := filepath.Join(t.TempDir(), "svc.yaml")
	if err := os.WriteFile(svc, []byte(`apiVersion: v1
kind: Service
metadata:
  name: fetch-ov-b
spec:
  selector:
    app: fetch-ov-b
  ports:
    - port: 80
      targetPort: 8080
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s.mustKubectl("apply", "-f", svc)
	clusterIP := s.mustKubectl("get", "service", "fetch-ov-b", "-o", "jsonpath={.spec.clusterIP}")
	for _, from := range []string{"ov-a", "ov-b"} {
		poll.Until(t, fmt.Sprintf("the pod on %s calls the Service fetch-ov-b at %s", from, clusterIP), time.Minute, func(ctx context.Context) (bool, error) {
			r, err := podFetch(ctx, c.ns(from), ips[from], "http://"+clusterIP+"/peer")
			if err != nil {
				return false, err
			}
			if r.Status != http.StatusOK || r.Error != "" {
				return false, fmt.Errorf("the pod got %d %q %s", r.Status, r.Body, r.Error)
			}
			t.Logf("%s → Service fetch-ov-b (%s): %s", from, clusterIP, r.Body)
			return true, nil
		})
	}
	// By its name, from the pod on ov-a: the agent's cluster DNS answers it (the pod's
	// resolv.conf names it, with the namespace's search path).
	poll.Until(t, "the pod on ov-a calls http://fetch-ov-b/peer by the Service's name", time.Minute, func(ctx context.Context) (bool, error) {
		r, err := podFetch(ctx, c.ns("ov-a"), ips["ov-a"], "http://fetch-ov-b/peer")
		if err != nil {
			return false, err
		}
		if r.Status != http.StatusOK || r.Error != "" {
			return false, fmt.Errorf("the pod got %d %q %s", r.Status, r.Body, r.Error)
		}
		t.Logf("ov-a → http://fetch-ov-b/peer: %s", r.Body)
		return true, nil
	})
}

// TestOverlayRevisionSpreadsAndGatewayReachesEveryNode: a revision held at six pods on a
// server and two agents (machines of their own) has pods on every node, and requests through
// the server's gateway reach pods on every node: the gateway reaches the agents' pods through
// the overlay.
func TestOverlayRevisionSpreadsAndGatewayReachesEveryNode(t *testing.T) {
	c := startOverlayCluster(t, 2)
	s := c.s
	img := buildImage(t, c.ports[4], "runtime")
	manifest := filepath.Join(t.TempDir(), "spread.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: spread
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/min-scale: "6"
        autoscaling.knative.dev/max-scale: "6"
    spec:
      containers:
        - image: `+img+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.mustKubectl("apply", "-f", manifest)
	podNode := map[string]string{}
	waitLong(t, s, 4*time.Minute, "six running pods of the revision", func(out string) bool {
		clear(podNode)
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[2] == "Running" {
				podNode[f[0]] = f[1]
			}
		}
		return len(podNode) == 6
	}, "get", "pods", "-l", "serving.knative.dev/service=spread", "-o",
		`jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase}{"\n"}{end}`)
	perNode := map[string]int{}
	for _, node := range podNode {
		perNode[node]++
	}
	t.Logf("the revision's pods per node: %v", perNode)
	if len(perNode) != 3 {
		t.Errorf("the six pods are on %d nodes (%v), want all three", len(perNode), perNode)
	}
	s.eventually("the spread service Ready", func(out string) bool { return out == "True" },
		"get", "ksvc", "spread", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)

	// Through the gateway until every node's pods have answered.
	url := "http://spread.default.localhost:" + strconv.Itoa(c.ports[6]) + "/"
	answered := map[string]int{}
	poll.Until(t, "answers through the gateway from pods on every node", 90*time.Second, func(ctx context.Context) (bool, error) {
		_, body, err := get(ctx, url)
		if err != nil {
			return false, err
		}
		var r struct {
			Hostname string `json:"hostname"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			return false, fmt.Errorf("the gateway answered %.200q: %w", body, err)
		}
		node, ok := podNode[r.Hostname]
		if !ok {
			return false, fmt.Errorf("an answer from %q, not one of the revision's pods %v", r.Hostname, podNode)
		}
		answered[node]++
		if len(answered) < len(perNode) {
			return false, fmt.Errorf("answers per node so far: %v", answered)
		}
		return true, nil
	})
	t.Logf("answers through the gateway per node: %v", answered)
}

// hostGet sends GET http://addr/ with Host host from the network namespace ns ("" for the
// host's) and returns the status.
func hostGet(ctx context.Context, ns, addr, host string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	client := &http.Client{Timeout: 10 * time.Second}
	if ns != "" {
		client = netnsmachines.Client(ns, 10*time.Second)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(b), err
}

// TestOverlayPodsOnAgentsCallKnativeServices: a pod on an agent calls Knative Services by
// their cluster names (status.address.url): its agent's DNS answers them with the ClusterIP of
// kube-system/gantry-gateway, whose endpoint the server writes (its gateway on its pods'
// bridge), and the agent's kube-proxy sends the request there over the overlay. A
// cluster-local Service answers the pod and is still refused to the host networks: the
// agent's (which reaches the server's bridge from its address in the pod network) and the
// server's.
func TestOverlayPodsOnAgentsCallKnativeServices(t *testing.T) {
	c := startOverlayCluster(t, 1)
	s := c.s
	fetchImg := buildImage(t, c.ports[4], "fetch")
	helloImg := buildImage(t, c.ports[4], "hello")
	manifest := filepath.Join(t.TempDir(), "ksvc.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: v1
kind: Pod
metadata:
  name: fetch-a
spec:
  nodeSelector:
    kubernetes.io/hostname: ov-a
  containers:
    - name: fetch
      image: `+fetchImg+`
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    spec:
      containers:
        - image: `+helloImg+`
          env: [{name: TARGET, value: public}]
---
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: local
  labels:
    networking.knative.dev/visibility: cluster-local
spec:
  template:
    spec:
      containers:
        - image: `+helloImg+`
          env: [{name: TARGET, value: local}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s.mustKubectl("apply", "-f", manifest)
	podIP := ""
	waitLong(t, s, 3*time.Minute, "the fetch pod running on ov-a", func(out string) bool {
		f := strings.Fields(out)
		if len(f) == 3 && f[0] == "ov-a" && f[2] == "Running" {
			podIP = f[1]
			return true
		}
		return false
	}, "get", "pod", "fetch-a", "-o", `jsonpath={.spec.nodeName} {.status.podIP} {.status.phase}`)
	for _, name := range []string{"hello", "local"} {
		waitLong(t, s, 3*time.Minute, "the Knative Service "+name+" Ready", func(out string) bool { return out == "True" },
			"get", "ksvc", name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	}

	// The gateways' Service, with the server's gateway on its bridge as its endpoint.
	clusterIP := s.mustKubectl("-n", "kube-system", "get", "service", "gantry-gateway", "-o", "jsonpath={.spec.clusterIP}")
	bridgeGW := "10.224.0.1"
	waitLong(t, s, time.Minute, "the server's gateway as the endpoint of gantry-gateway", func(out string) bool { return out == bridgeGW },
		"-n", "kube-system", "get", "endpointslice", "gantry-gateway", "-o", "jsonpath={.endpoints[*].addresses[*]}")

	for _, tc := range []struct{ name, want string }{{"hello", "Hello public!"}, {"local", "Hello local!"}} {
		addr := s.mustKubectl("get", "ksvc", tc.name, "-o", "jsonpath={.status.address.url}")
		if addr != "http://"+tc.name+".default.svc.cluster.local" {
			t.Errorf("%s's status.address.url = %q", tc.name, addr)
		}
		poll.Until(t, "the pod on ov-a resolves "+addr+" to the gateways' ClusterIP "+clusterIP, time.Minute, func(ctx context.Context) (bool, error) {
			u := "http://" + net.JoinHostPort(podIP, "8080") + "/resolve?name=" + url.QueryEscape(tc.name+".default.svc.cluster.local")
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return false, err
			}
			resp, err := netnsmachines.Client(c.ns("ov-a"), 15*time.Second).Do(req)
			if err != nil {
				return false, err
			}
			defer resp.Body.Close()
			var r struct {
				Addrs []string `json:"addrs"`
				Error string   `json:"error"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
				return false, err
			}
			if len(r.Addrs) != 1 || r.Addrs[0] != clusterIP {
				return false, fmt.Errorf("resolved to %v %s", r.Addrs, r.Error)
			}
			return true, nil
		})
		poll.Until(t, "the pod on ov-a calls "+addr, time.Minute, func(ctx context.Context) (bool, error) {
			r, err := podFetch(ctx, c.ns("ov-a"), podIP, addr)
			if err != nil {
				return false, err
			}
			if r.Status != http.StatusOK || strings.TrimSpace(r.Body) != tc.want {
				return false, fmt.Errorf("the pod got %d %q %s", r.Status, r.Body, r.Error)
			}
			t.Logf("the pod on ov-a → %s: %d %q", addr, r.Status, strings.TrimSpace(r.Body))
			return true, nil
		})
	}

	// The host networks: the agent's reaches the server's bridge over the overlay (from its
	// flannel device's address, inside the cluster's range), the server's is local to it.
	// Neither is a pod: the cluster-local host is refused, the public one answers.
	for _, from := range []struct{ what, ns string }{{"ov-a's host network", c.ns("ov-a")}, {"the server's host network", ""}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		code, body, err := hostGet(ctx, from.ns, bridgeGW+":80", "local.default.svc.cluster.local")
		if err != nil || code != http.StatusNotFound {
			t.Errorf("%s → the server's bridge gateway, host local.default.svc.cluster.local: %d %q %v, want 404", from.what, code, body, err)
		}
		code, body, err = hostGet(ctx, from.ns, bridgeGW+":80", "hello.default.svc.cluster.local")
		if err != nil || code != http.StatusNotFound {
			t.Errorf("%s → the server's bridge gateway, host hello.default.svc.cluster.local: %d %q %v, want 404", from.what, code, body, err)
		}
		code, body, err = hostGet(ctx, from.ns, bridgeGW+":80", "hello.default.localhost")
		if err != nil || code != http.StatusOK {
			t.Errorf("%s → the server's bridge gateway, host hello.default.localhost: %d %q %v, want 200", from.what, code, body, err)
		}
		cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if code, body, err := hostGet(ctx, "", "127.0.0.1:"+strconv.Itoa(c.ports[6]), "local.default.svc.cluster.local"); err != nil || code != http.StatusNotFound {
		t.Errorf("the server's public gateway, host local.default.svc.cluster.local: %d %q %v, want 404", code, body, err)
	}
}
