package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-run/gantry/internal/freeport"
	"github.com/gantry-run/gantry/internal/poll"
)

// The agent's network in these tests: apart from the server's (gantry-e2e0, 10.246/16).
const (
	agentBridge  = "gantry-e2ea"
	agentPodCIDR = "10.241.0.0/16"
)

// TestAgentJoins: gantry agent joins a server with its token and runs pods on a node of its
// own, whose logs the API server reads through the agent's kubelet API; a wrong token, a
// token of another cluster and a second agent claiming the first one's node name are each
// refused with one line.
func TestAgentJoins(t *testing.T) {
	requireNode(t)
	dataDir := newDataDir(t)
	ports := freePorts(t)
	s := startServer(t, dataDir, ports)
	tokenBytes, err := os.ReadFile(filepath.Join(dataDir, "token"))
	if err != nil {
		t.Fatalf("the server wrote no join token: %v", err)
	}
	token := strings.TrimSpace(string(tokenBytes))
	server := fmt.Sprintf("https://127.0.0.1:%d", ports[0])
	kubeletPorts, err := freeport.Get(2)
	if err != nil {
		t.Fatal(err)
	}
	agentArgs := func(dir, name, tok string, kubeletPort int) []string {
		return []string{"agent", "--server", server, "--token", tok, "--node-name", name, "--data-dir", dir,
			"--bridge", agentBridge, "--pod-cidr", agentPodCIDR, "--kubelet-port", strconv.Itoa(kubeletPort),
			"--apiserver-port", strconv.Itoa(ports[0]), "--address", "127.0.0.1"}
	}

	// Refusals first: none of them leaves a node behind.
	refused := func(what, tok, name string, wants ...string) {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "agent")
		cmd := exec.Command(gantryBin, agentArgs(dir, name, tok, kubeletPorts[1])...)
		done := make(chan struct{})
		var out []byte
		go func() { out, _ = cmd.CombinedOutput(); close(done) }()
		select {
		case <-done:
		case <-time.After(90 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("%s: the agent still runs after 90 s:\n%s", what, out)
		}
		if cmd.ProcessState.ExitCode() == 0 {
			t.Errorf("%s: the agent exited 0:\n%s", what, out)
		}
		last := lastLine(string(out))
		for _, want := range wants {
			if !strings.Contains(last, want) {
				t.Errorf("%s: the agent's last line %q does not say %q", what, last, want)
			}
		}
	}
	id, _, _ := strings.Cut(token[strings.Index(token, "::")+2:], ".")
	refused("a wrong secret", token[:strings.LastIndex(token, ".")+1]+"aaaaaaaaaaaaaaaa", "worker-x", "the token is not valid for this server")
	refused("a token of another cluster", "K10"+strings.Repeat("b", 64)+"::"+id+".aaaaaaaaaaaaaaaa", "worker-x", "is not the one the token pins", "another cluster")

	// The agent joins and its node becomes Ready.
	agentDir := filepath.Join(t.TempDir(), "agent")
	agent := exec.Command(gantryBin, agentArgs(agentDir, "worker-1", token, kubeletPorts[0])...)
	var agentOut strings.Builder
	agent.Stdout, agent.Stderr = &agentOut, &agentOut
	began := time.Now()
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = agent.Process.Kill()
		_ = agent.Wait()
		_ = exec.Command(gantryBin, "cleanup", "--data-dir", agentDir, "--bridge", agentBridge, "--pod-cidr", agentPodCIDR).Run()
		_ = exec.Command("ip", "link", "del", agentBridge).Run()
		if t.Failed() {
			t.Logf("the agent's output:\n%s", agentOut.String())
		}
	})
	s.eventually("node worker-1 Ready", func(out string) bool { return out == "True" },
		"get", "node", "worker-1", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	t.Logf("agent start → node Ready: %s", time.Since(began).Round(time.Millisecond))

	// A second agent may not take worker-1.
	refused("another agent claiming worker-1", token, "worker-1", "denied", `node name "worker-1" belongs to another agent`)

	img := buildImage(t, ports[4], "hello")
	manifest := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: v1
kind: Pod
metadata:
  name: on-worker
spec:
  nodeSelector:
    kubernetes.io/hostname: worker-1
  containers:
    - name: hello
      image: `+img+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.mustKubectl("apply", "-f", manifest)
	ip := s.eventually("the pod on worker-1 running with an address in the agent's range", func(out string) bool {
		return strings.HasPrefix(out, "10.241.")
	}, "get", "pod", "on-worker", "-o", `jsonpath={.status.podIP}`)
	if body := httpGetRetry(t, "http://"+ip+":8080/"); !strings.Contains(body, "Hello") {
		t.Errorf("the pod on worker-1 answered %q", body)
	}
	// kubectl logs goes API server → the agent's kubelet API, over its CSR-issued certificate.
	s.eventually("the pod's logs through the agent's kubelet API", func(out string) bool { return strings.Contains(out, "listening") },
		"logs", "on-worker")

	// A Deployment's pod on worker-1, tolerating an unreachable node for 5 s only.
	deploy := filepath.Join(t.TempDir(), "deploy.yaml")
	if err := os.WriteFile(deploy, []byte(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: movable
spec:
  replicas: 1
  selector:
    matchLabels: {app: movable}
  template:
    metadata:
      labels: {app: movable}
    spec:
      affinity:
        nodeAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              preference:
                matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [worker-1]}]
      tolerations:
        - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 5}
        - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 5}
      containers:
        - name: hello
          image: `+img+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.mustKubectl("apply", "-f", deploy)
	s.eventually("the movable pod running on worker-1", func(out string) bool { return out == "worker-1 Running" },
		"get", "pods", "-l", "app=movable", "-o", `jsonpath={range .items[*]}{.spec.nodeName} {.status.phase}{end}`)

	// kill -9 of the agent: its node goes NotReady, and the pod comes back on the server's node.
	if err := agent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	waitLong(t, s, 3*time.Minute, "node worker-1 not Ready", func(out string) bool { return out == "Unknown" || out == "False" },
		"get", "node", "worker-1", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	t.Logf("kill -9 → node not Ready: %s", time.Since(killed).Round(time.Second))
	waitLong(t, s, 3*time.Minute, "the movable pod running again on node gantry", func(out string) bool { return strings.Contains(out, "gantry Running") },
		"get", "pods", "-l", "app=movable", "-o", `jsonpath={range .items[*]}{.spec.nodeName} {.status.phase};{end}`)
	t.Logf("kill -9 → the pod running on gantry: %s", time.Since(killed).Round(time.Second))
	// Nothing was lost: the pod on worker-1 is still an object, the Deployment still there.
	if _, err := s.kubectl("get", "pod/on-worker", "deployment/movable"); err != nil {
		t.Errorf("objects after the agent's death: %v", err)
	}
}

// waitLong retries kubectl until check accepts its output, for longer than eventually's minute.
func waitLong(t *testing.T, s *server, timeout time.Duration, what string, check func(string) bool, args ...string) {
	t.Helper()
	poll.Until(t, what, timeout, func(context.Context) (bool, error) {
		out, err := s.kubectl(args...)
		if err != nil {
			return false, err
		}
		if check(out) {
			return true, nil
		}
		return false, fmt.Errorf("last output %q", out)
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
