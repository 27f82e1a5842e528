package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sv1alpha1 "github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// TestServerlessProfilesPlacePods runs `gantry server` and drives it with kubectl as a user
// would: two profiles match a Deployment's pods, the first by name wins; each pod gets a Node
// of its own, named after its address, tainted and sized; a pod no profile matches lands on
// the shared node; what a serverless node cannot run is refused naming the field, as is a
// change of a profile's spec; deleting the Deployment takes its Nodes with it.
func TestServerlessProfilesPlacePods(t *testing.T) {
	requireNode(t)
	dataDir := newDataDir(t)
	ports := freePorts(t)
	s := startServer(t, dataDir, ports)
	img := buildImage(t, ports[4], "hello")
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s.mustKubectl("apply", "-f", write("profiles.yaml", `apiVersion: serverless.gantry.dev/v1alpha1
kind: ServerlessProfile
metadata:
  name: web
spec:
  selectors:
  - namespace: default
    labels: {app: web}
---
apiVersion: serverless.gantry.dev/v1alpha1
kind: ServerlessProfile
metadata:
  name: a-wildcard
spec:
  selectors:
  - namespace: "d?fault"
    labels: {"app": "w*"}
`))
	for _, p := range []string{"web", "a-wildcard"} {
		s.eventually("profile "+p+" Active", func(out string) bool { return out == "Active" },
			"get", "sp", p, "-o", "jsonpath={.status.phase}")
	}
	s.mustKubectl("apply", "-f", write("apps.yaml", `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: hello
        image: `+img+`
        resources: {requests: {cpu: 500m, memory: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata:
  name: plain
  labels: {app: other}
spec:
  containers:
  - name: hello
    image: `+img+"\n"))

	// Both pods Running, each on a serverless node of its own named after its address.
	pods := s.eventually("the web pods Running", func(out string) bool {
		return strings.Count(out, "Running") == 2
	}, "get", "pods", "-l", "app=web", "-o",
		`jsonpath={range .items[*]}{.status.phase} {.spec.nodeName} {.status.podIP} {.metadata.labels.serverless\.gantry\.dev/profile} {.metadata.annotations.serverless\.gantry\.dev/capacity-provisioned}{"\n"}{end}`)
	nodes := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(pods), "\n") {
		f := strings.SplitN(line, " ", 5)
		if len(f) != 5 {
			t.Fatalf("pod line %q", line)
		}
		node, ip, profile, size := f[1], f[2], f[3], f[4]
		if node != sv1alpha1.NodeNamePrefix+strings.ReplaceAll(ip, ".", "-") {
			t.Errorf("pod at %s on node %q, want the node named after its address", ip, node)
		}
		if profile != "a-wildcard" {
			t.Errorf("pod selected by %q, want a-wildcard (the first by name)", profile)
		}
		// 0.5 vCPU and 1 GiB + 256 MiB → the 0.5 vCPU row's 2 GB.
		if size != "0.5vCPU 2GB" {
			t.Errorf("pod sized %q, want 0.5vCPU 2GB", size)
		}
		nodes[node] = true
	}
	if len(nodes) != 2 {
		t.Fatalf("the two pods share nodes: %v", nodes)
	}
	for node := range nodes {
		out := s.mustKubectl("get", "node", node, "-o",
			`jsonpath={.spec.taints[0].key}={.spec.taints[0].value}:{.spec.taints[0].effect} {.status.capacity.cpu} {.status.capacity.memory} {.status.conditions[?(@.type=="Ready")].status}`)
		want := sv1alpha1.ComputeTypeTaintKey + "=" + sv1alpha1.ComputeTypeTaintValue + ":NoSchedule 500m 2Gi True"
		if out != want {
			t.Errorf("node %s: %q, want %q", node, out, want)
		}
	}
	s.eventually("the plain pod Running on the shared node", func(out string) bool { return out == "Running gantry" },
		"get", "pod", "plain", "-o", "jsonpath={.status.phase} {.spec.nodeName}")

	// Refusals name the field.
	_, err := s.kubectl("apply", "-f", write("privileged.yaml", `apiVersion: v1
kind: Pod
metadata:
  name: privileged
  labels: {app: web}
spec:
  containers:
  - name: hello
    image: `+img+`
    securityContext: {privileged: true}
`))
	if err == nil || !strings.Contains(err.Error(), "spec.containers[0].securityContext.privileged") {
		t.Errorf("a privileged pod a profile selects: %v, want a refusal naming the field", err)
	}
	_, err = s.kubectl("patch", "sp", "web", "--type=merge", "-p", `{"spec":{"selectors":[{"namespace":"other"}]}}`)
	if err == nil || !strings.Contains(err.Error(), "immutable") {
		t.Errorf("changing a profile's spec: %v, want it refused as immutable", err)
	}

	// The Nodes go with their pods.
	s.mustKubectl("delete", "deployment", "web", "--wait=false")
	began := time.Now()
	s.eventually("the serverless nodes gone", func(out string) bool {
		return !strings.Contains(out, sv1alpha1.NodeNamePrefix)
	}, "get", "nodes", "-o", "name")
	t.Logf("serverless nodes gone %s after the Deployment's deletion (its pods' grace included)", time.Since(began).Round(time.Millisecond))
	s.stop()
}
