package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gantry-run/gantry/internal/install"
	"github.com/gantry-run/gantry/internal/poll"
)

// The cluster-mode test's own bridge and pod range, apart from the other e2e tests'.
const (
	clusterBridge  = "gantry-cm0"
	clusterPodCIDR = "10.234.0.0/16"
	kubeProxyLock  = "/run/gantry/kube-proxy.lock"
)

// waitKubeProxyLock waits until no gantry server on this host runs kube-proxy (its rules are
// one per host, and the installed stack is reached through ClusterIPs); it skips the test
// when one still does after a while.
func waitKubeProxyLock(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		f, err := os.OpenFile(kubeProxyLock, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil && errors.Is(err, os.ErrNotExist) {
			return // no server has ever run kube-proxy here
		}
		if err != nil {
			t.Fatal(err)
		}
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		_ = f.Close() // releases it
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Skipf("another gantry server on this host runs kube-proxy (%s) for 5m; cluster mode needs ClusterIPs", kubeProxyLock)
		}
		time.Sleep(5 * time.Second)
	}
}

// TestClusterMode installs the serving stack onto a gantry server started without it (a
// plain Kubernetes API and node): the controller runs as a pod from an image of this
// gantry binary, a Knative Service answers through the installed gateway's Service, traffic
// splits 50/50, a revision scales to zero and back, and uninstall leaves nothing behind.
func TestClusterMode(t *testing.T) {
	requireNode(t)
	if err := os.MkdirAll(filepath.Dir(kubeProxyLock), 0o755); err != nil {
		t.Fatal(err)
	}
	waitKubeProxyLock(t)
	nodeIP, err := utilnet.ChooseHostInterface()
	if err != nil {
		t.Skipf("no host interface for the API server to listen on, where pods reach it: %v", err)
	}
	dataDir := newDataDir(t)
	ports := freePorts(t)
	args := serverArgs(dataDir, ports)
	args = append(args[:len(args)-3:len(args)-3], // the shared e2e bridge, range and --node
		"--bridge="+clusterBridge, "--pod-cidr="+clusterPodCIDR, "--node=true",
		"--serving=false", "--kube-proxy=on", "--etcd-snapshot-interval=0",
		// Pods reach the API server through the kubernetes Service, at the node's address.
		"--bind-address="+nodeIP.String())
	s := startServerOn(t, dataDir, ports, clusterBridge, clusterPodCIDR, args)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", clusterBridge).Run() })
	kubeconfig := filepath.Join(dataDir, "kubeconfig.yaml")

	// A plain cluster: no Knative kinds.
	if out, err := s.kubectl("get", "crd", "-o", "name"); err != nil || strings.Contains(out, "knative") {
		t.Fatalf("the plain server has Knative CRDs or none can be listed: %v\n%s", err, out)
	}

	// The gantry image: this binary, as a non-root user.
	out, err := exec.Command(gantryBin, "image", "wrap", gantryBin, fmt.Sprintf("127.0.0.1:%d/gantry-system/gantry", ports[4]), "--user", "65532").CombinedOutput()
	if err != nil {
		t.Fatalf("gantry image wrap: %v\n%s", err, out)
	}
	img := strings.TrimSpace(string(out))

	// The dry run prints what install applies.
	out, err = exec.Command(gantryBin, "install", "--image", img, "--dry-run", "-o", "yaml").Output()
	if err != nil {
		t.Fatalf("gantry install --dry-run: %v", err)
	}
	kinds := map[string]int{}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(string(out)), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("decoding the dry run: %v", err)
			}
			break
		}
		kinds[u.GetKind()]++
	}
	if kinds["CustomResourceDefinition"] != 7 || kinds["Deployment"] != 1 || kinds["MutatingWebhookConfiguration"] != 1 || kinds["ValidatingWebhookConfiguration"] != 2 {
		t.Errorf("dry run kinds %v", kinds)
	}
	if out, err := s.kubectl("get", "crd", "-o", "name"); err != nil || strings.Contains(out, "knative") {
		t.Fatalf("the dry run installed something: %v\n%s", err, out)
	}

	began := time.Now()
	if out, err := exec.Command(gantryBin, "install", "--kubeconfig", kubeconfig, "--image", img, "--timeout", "3m").CombinedOutput(); err != nil {
		t.Fatalf("gantry install: %v\n%s\n%s", err, out, s.kubectlOrErr("-n", "gantry-system", "describe", "pods"))
	}
	t.Logf("installed in %s", time.Since(began).Round(time.Millisecond))
	if out := s.mustKubectl("-n", "gantry-system", "get", "pods", "-l", "app=gantry-controller", "-o", "jsonpath={.items[*].spec.containers[0].image}"); out != img {
		t.Errorf("controller image %q, want %q", out, img)
	}

	// A Knative Service with two revisions, 50/50, the second tagged and quick to scale to zero.
	digest := buildImageByDigest(t, ports[4], "hello")
	s.mustKubectl("-n", "gantry-system", "patch", "configmap", "config-autoscaler", "--type=merge", "-p", `{"data":{"scale-to-zero-grace-period":"6s"}}`)
	applyYAML(t, s, fmt.Sprintf(`apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello, namespace: default}
spec:
  template:
    spec:
      containers:
      - image: %s
`, digest))
	s.eventually("hello-00001 ready", func(out string) bool { return out == "True" },
		"get", "revision", "hello-00001", "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}")
	applyYAML(t, s, fmt.Sprintf(`apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello, namespace: default}
spec:
  template:
    metadata:
      annotations: {autoscaling.knative.dev/window: "6s"}
    spec:
      containers:
      - image: %s
        env: [{name: TARGET, value: Two}]
  traffic:
  - {revisionName: hello-00001, percent: 50}
  - {latestRevision: true, percent: 50, tag: two}
`, digest))
	s.eventually("the split in the Route's status", func(out string) bool { return out == "hello-00001 hello-00002" },
		"get", "route", "hello", "-o", "jsonpath={.status.traffic[*].revisionName}")
	gw := s.mustKubectl("-n", "gantry-system", "get", "service", install.GatewayServiceName, "-o", "jsonpath={.spec.clusterIP}")
	get := func(host string) (string, error) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+gw+"/", nil)
		req.Host = host
		c := &http.Client{Timeout: 30 * time.Second}
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: %s", resp.Status, b)
		}
		return strings.TrimSpace(string(b)), err
	}
	poll.Until(t, "hello answers through the installed gateway", time.Minute, func(context.Context) (bool, error) {
		out, err := get("hello.default.localhost")
		return err == nil && strings.HasPrefix(out, "Hello"), err
	})
	counts := map[string]int{}
	const n = 60
	for range n {
		out, err := get("hello.default.localhost")
		if err != nil {
			t.Fatalf("request through the gateway: %v", err)
		}
		counts[out]++
	}
	// 50/50 of 60: each side between 15 and 45 but with a chance of about 1e-4 of failing.
	if counts["Hello World!"] < 15 || counts["Hello Two!"] < 15 || counts["Hello World!"]+counts["Hello Two!"] != n {
		t.Errorf("answers %v, want about half each of Hello World! and Hello Two!", counts)
	}
	if out, err := get("two-hello.default.localhost"); err != nil || out != "Hello Two!" {
		t.Errorf("the tag's host: %q, %v", out, err)
	}

	// hello-00002 scales to zero, and a request brings it back through the activator.
	poll.Until(t, "hello-00002 at zero pods", 2*time.Minute, func(context.Context) (bool, error) {
		out, err := s.kubectl("get", "pods", "-l", "serving.knative.dev/revision=hello-00002", "-o", "name")
		if err != nil {
			return false, err
		}
		return out == "", fmt.Errorf("pods %q", out)
	})
	began = time.Now()
	if out, err := get("two-hello.default.localhost"); err != nil || out != "Hello Two!" {
		t.Fatalf("from zero: %q, %v", out, err)
	}
	t.Logf("hello-00002 answered from zero in %s", time.Since(began).Round(time.Millisecond))

	if out, err := exec.Command(gantryBin, "uninstall", "--kubeconfig", kubeconfig, "--timeout", "2m").CombinedOutput(); err != nil {
		t.Fatalf("gantry uninstall: %v\n%s", err, out)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	// Pods of the deleted Deployments may take a moment to go.
	poll.Until(t, "nothing of Gantry's serving stack left", time.Minute, func(ctx context.Context) (bool, error) {
		left, err := install.Leftovers(ctx, cfg)
		if err != nil {
			return false, err
		}
		return len(left) == 0, fmt.Errorf("left: %s", strings.Join(left, ", "))
	})
	// What the plain server keeps in gantry-system is still there.
	s.mustKubectl("-n", "gantry-system", "get", "configmap", "config-metering")
	if out := s.mustKubectl("get", "crd", "-o", "name"); strings.Contains(out, "knative") {
		t.Errorf("CRDs left: %s", out)
	}
}

// buildImageByDigest builds test/images/<name> into the server's registry and returns it
// by digest: the controller pod does not reach the host's loopback registry to resolve a tag
// (the node, which pulls, does).
func buildImageByDigest(t *testing.T, registryPort int, name string) string {
	t.Helper()
	ref := fmt.Sprintf("127.0.0.1:%d/default/%s", registryPort, name)
	out, err := exec.Command(gantryBin, "image", "build", "../images/"+name, ref).CombinedOutput()
	if err != nil {
		t.Fatalf("gantry image build: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// applyYAML applies a manifest with gantry kubectl.
func applyYAML(t *testing.T, s *server, manifest string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "m.yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	s.mustKubectl("apply", "-f", f)
}

// kubectlOrErr is kubectl's output, or its error, for a failure message.
func (s *server) kubectlOrErr(args ...string) string {
	out, err := s.kubectl(args...)
	if err != nil {
		return err.Error()
	}
	return out
}
