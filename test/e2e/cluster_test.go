package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/clientcmd"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/gantry-run/gantry/internal/gatewayapi"
	"github.com/gantry-run/gantry/internal/install"
	"github.com/gantry-run/gantry/internal/poll"
	netv1alpha1 "github.com/gantry-run/gantry/pkg/apis/networking/v1alpha1"
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
		t.Logf("waiting for the kube-proxy lock (%s): another gantry server runs kube-proxy", kubeProxyLock)
		if time.Now().After(deadline) {
			t.Skipf("another gantry server on this host runs kube-proxy (%s) for 5m; cluster mode needs ClusterIPs", kubeProxyLock)
		}
		time.Sleep(5 * time.Second)
	}
}

// plainCluster is a gantry server started without its serving stack, with the gantry image
// in its registry.
type plainCluster struct {
	*server
	ports      []int
	kubeconfig string
	image      string
	// qpImage is the queue-proxy's own binary as an image (gantry image queue-proxy).
	qpImage string
}

// startPlainCluster starts gantry server --serving=false on the cluster-mode test's bridge,
// with kube-proxy (the installed stack is reached through ClusterIPs) and the API server
// where pods reach it, and pushes this gantry binary to its registry as the gantry image,
// and the queue-proxy binary it carries as the queue-proxy image.
func startPlainCluster(t *testing.T) *plainCluster {
	t.Helper()
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

	// A plain cluster: no Knative kinds.
	if out, err := s.kubectl("get", "crd", "-o", "name"); err != nil || strings.Contains(out, "knative") {
		t.Fatalf("the plain server has Knative CRDs or none can be listed: %v\n%s", err, out)
	}
	// The gantry image: this binary, as a non-root user.
	out, err := exec.Command(gantryBin, "image", "wrap", gantryBin, fmt.Sprintf("127.0.0.1:%d/gantry-system/gantry", ports[4]), "--user", "65532").CombinedOutput()
	if err != nil {
		t.Fatalf("gantry image wrap: %v\n%s", err, out)
	}
	c := &plainCluster{server: s, ports: ports, kubeconfig: filepath.Join(dataDir, "kubeconfig.yaml"), image: strings.TrimSpace(string(out))}
	// The queue-proxy image: its own binary, as the default non-root user.
	out, err = exec.Command(gantryBin, "image", "queue-proxy", fmt.Sprintf("127.0.0.1:%d/gantry-system/queue-proxy", ports[4])).CombinedOutput()
	if err != nil {
		t.Fatalf("gantry image queue-proxy: %v\n%s", err, out)
	}
	c.qpImage = strings.TrimSpace(string(out))
	return c
}

// leader is the name of the controller pod that holds the lease, once exactly one of the
// running replicas is ready.
func (c *plainCluster) leader(t *testing.T) string {
	t.Helper()
	var holder string
	poll.Until(t, "one leader among the controller's replicas", 2*time.Minute, func(context.Context) (bool, error) {
		ready, err := c.kubectl("-n", "gantry-system", "get", "pods", "-l", "app=gantry-controller", "-o",
			`jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}`)
		if err != nil {
			return false, err
		}
		if holder, err = c.kubectl("-n", "gantry-system", "get", "lease", "gantry-serving-controllers", "-o", "jsonpath={.spec.holderIdentity}"); err != nil {
			return false, err
		}
		fields := strings.Fields(ready)
		readyPods := 0
		for _, f := range fields {
			name, status, _ := strings.Cut(f, "=")
			if status == "True" {
				readyPods++
				if !strings.HasPrefix(holder, name) {
					return false, fmt.Errorf("ready pod %s is not the lease holder %q", name, holder)
				}
			}
		}
		return len(fields) == 2 && readyPods == 1, fmt.Errorf("pods %q, holder %q", ready, holder)
	})
	name, _, _ := strings.Cut(holder, "_")
	return name
}

// install runs gantry install with extra flags.
func (c *plainCluster) install(t *testing.T, extra ...string) {
	t.Helper()
	began := time.Now()
	args := append([]string{"install", "--kubeconfig", c.kubeconfig, "--image", c.image, "--timeout", "3m"}, extra...)
	if out, err := exec.Command(gantryBin, args...).CombinedOutput(); err != nil {
		t.Fatalf("gantry install: %v\n%s\n%s\nlogs:\n%s", err, out, c.kubectlOrErr("-n", "gantry-system", "describe", "pods"),
			c.kubectlOrErr("-n", "gantry-system", "logs", "-l", "app=gantry-controller", "--previous", "--tail=20"))
	}
	t.Logf("installed in %s", time.Since(began).Round(time.Millisecond))
}

// uninstall runs gantry uninstall and checks nothing of the serving stack is left.
func (c *plainCluster) uninstall(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(gantryBin, "uninstall", "--kubeconfig", c.kubeconfig, "--timeout", "2m").CombinedOutput(); err != nil {
		t.Fatalf("gantry uninstall: %v\n%s", err, out)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	left, err := install.Leftovers(context.Background(), cfg)
	if err != nil || len(left) > 0 {
		t.Errorf("after uninstall: left %q, %v", left, err)
	}
	// What the plain server keeps in gantry-system is still there.
	c.mustKubectl("-n", "gantry-system", "get", "configmap", "config-metering")
	if out := c.mustKubectl("get", "crd", "-o", "name"); strings.Contains(out, "knative") {
		t.Errorf("CRDs left: %s", out)
	}
}

// helloSplit deploys Knative Service hello with two revisions, 50/50, the second tagged
// "two" and quick to scale to zero.
func (c *plainCluster) helloSplit(t *testing.T) {
	t.Helper()
	digest := buildImageByDigest(t, c.ports[4], "hello")
	c.mustKubectl("-n", "gantry-system", "patch", "configmap", "config-autoscaler", "--type=merge", "-p", `{"data":{"scale-to-zero-grace-period":"6s"}}`)
	applyYAML(t, c.server, fmt.Sprintf(`apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: hello, namespace: default}
spec:
  template:
    spec:
      containers:
      - image: %s
`, digest))
	c.eventually("hello-00001 ready", func(out string) bool { return out == "True" },
		"get", "revision", "hello-00001", "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}")
	applyYAML(t, c.server, fmt.Sprintf(`apiVersion: serving.knative.dev/v1
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
	c.eventually("the split in the Route's status", func(out string) bool { return out == "hello-00001 hello-00002" },
		"get", "route", "hello", "-o", "jsonpath={.status.traffic[*].revisionName}")
}

// get sends GET / for host to the installed gateway's Service.
func (c *plainCluster) get(host string) (string, error) {
	return c.getService("gantry-system", install.GatewayServiceName, host, nil)
}

// getBackend sends GET / to the Service <revision> (the backend an HTTPRoute names) through
// its ClusterIP, with the host and the Knative-Serving-Namespace/-Revision headers the
// HTTPRoute's filter sets; withHeaders false leaves those out.
func (c *plainCluster) getBackend(revision, host string, withHeaders bool) (string, error) {
	var headers map[string]string
	if withHeaders {
		headers = map[string]string{netv1alpha1.RevisionHeaderName: revision, netv1alpha1.NamespaceHeaderName: "default"}
	}
	return c.getService("default", revision, host, headers)
}

// getService sends GET / for host, with headers, to the ClusterIP of the Service
// namespace/name, and returns the answer's body; an answer other than 200 is an error.
func (c *plainCluster) getService(namespace, name, host string, headers map[string]string) (string, error) {
	ip, err := c.kubectl("-n", namespace, "get", "service", name, "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		return "", err
	}
	req, err := http.NewRequest(http.MethodGet, "http://"+ip+"/", nil)
	if err != nil {
		return "", err
	}
	req.Host = host
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
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

// backendAddrs are the addresses and port of the EndpointSlice of the Service <revision>,
// as "ip ip … :port".
func (c *plainCluster) backendAddrs(revision string) (string, error) {
	return c.kubectl("get", "endpointslices.discovery.k8s.io", revision, "-o", `jsonpath={.endpoints[*].addresses[0]} :{.ports[0].port}`)
}

// readyIPs are the IPs of the ready pods matching selector in namespace, sorted, as "ip ip …".
func (c *plainCluster) readyIPs(namespace, selector string) (string, error) {
	out, err := c.kubectl("-n", namespace, "get", "pods", "-l", selector, "-o",
		`jsonpath={range .items[*]}{.status.podIP}={.status.conditions[?(@.type=="Ready")].status} {end}`)
	if err != nil {
		return "", err
	}
	var ips []string
	for _, f := range strings.Fields(out) {
		if ip, ready, _ := strings.Cut(f, "="); ready == "True" && ip != "" {
			ips = append(ips, ip)
		}
	}
	slices.Sort(ips)
	return strings.Join(ips, " "), nil
}

// TestClusterMode installs the serving stack onto a gantry server started without it (a
// plain Kubernetes API and node): the controller runs as a pod from an image of this
// gantry binary, a Knative Service answers through the installed gateway's Service, traffic
// splits 50/50, a revision scales to zero and back, and uninstall leaves nothing behind. Its
// queue-proxies run from the image of the queue-proxy's own binary (--queue-proxy-image); the
// other cluster-mode tests run them from the gantry image.
func TestClusterMode(t *testing.T) {
	c := startPlainCluster(t)
	s, img := c.server, c.image

	// A root queue-proxy image is refused before anything is pushed: the container runs as
	// non-root.
	if out, err := exec.Command(gantryBin, "image", "queue-proxy", "127.0.0.1:1/x", "--user", "0:0").CombinedOutput(); err == nil || !strings.Contains(string(out), "--user") {
		t.Errorf("gantry image queue-proxy --user 0:0: %v, %s; want an error naming --user", err, out)
	}

	// The dry run prints what install applies, and applies nothing.
	out, err := exec.Command(gantryBin, "install", "--image", img, "--dry-run", "-o", "yaml").Output()
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

	c.install(t, "--queue-proxy-image", c.qpImage)
	if out := s.mustKubectl("-n", "gantry-system", "get", "pods", "-l", "app=gantry-controller", "-o", "jsonpath={.items[*].spec.containers[0].image}"); out != img {
		t.Errorf("controller image %q, want %q", out, img)
	}
	c.helloSplit(t)
	if out := s.mustKubectl("get", "pods", "-l", "serving.knative.dev/service=hello", "-o",
		`jsonpath={range .items[*]}{.spec.containers[?(@.name=="queue-proxy")].image}{"\n"}{end}`); strings.TrimSpace(out) == "" ||
		strings.Trim(strings.ReplaceAll(out, c.qpImage, ""), "\n") != "" {
		t.Errorf("queue-proxy images %q, want each %q", out, c.qpImage)
	}
	// hello-00002 scales to zero, and a request brings it back through the activator. (After
	// a burst too: TestClusterModeScaleToZeroAfterBurst.)
	idle := time.Now()
	poll.Until(t, "hello-00002 at zero pods", 3*time.Minute, func(context.Context) (bool, error) {
		out, err := s.kubectl("get", "pods", "-l", "serving.knative.dev/revision=hello-00002", "-o", "name")
		if err != nil {
			return false, err
		}
		return out == "", fmt.Errorf("pods %q; kpa %s; controller log: %s", out,
			s.kubectlOrErr("get", "kpa", "hello-00002", "-o", "jsonpath={.status}"),
			s.kubectlOrErr("-n", "gantry-system", "logs", "deploy/gantry-controller", "--tail=15"))
	})
	t.Logf("hello-00002 at zero pods %s after it was ready", time.Since(idle).Round(time.Second))
	began := time.Now()
	if out, err := c.get("two-hello.default.localhost"); err != nil || out != "Hello Two!" {
		t.Fatalf("from zero: %q, %v", out, err)
	}
	t.Logf("hello-00002 answered from zero in %s", time.Since(began).Round(time.Millisecond))

	poll.Until(t, "hello answers through the installed gateway", time.Minute, func(context.Context) (bool, error) {
		out, err := c.get("hello.default.localhost")
		return err == nil && strings.HasPrefix(out, "Hello"), err
	})
	counts := map[string]int{}
	const n = 60
	for range n {
		out, err := c.get("hello.default.localhost")
		if err != nil {
			t.Fatalf("request through the gateway: %v", err)
		}
		counts[out]++
	}
	// 50/50 of 60: each side under 15 has a chance of about 1e-4.
	if counts["Hello World!"] < 15 || counts["Hello Two!"] < 15 || counts["Hello World!"]+counts["Hello Two!"] != n {
		t.Errorf("answers %v, want about half each of Hello World! and Hello Two!", counts)
	}
	if out, err := c.get("two-hello.default.localhost"); err != nil || out != "Hello Two!" {
		t.Errorf("the tag's host: %q, %v", out, err)
	}

	c.uninstall(t)
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

// TestClusterModeGatewayAPI installs the stack with --ingress gateway-api onto a plain
// cluster that serves Gateway API's HTTPRoute kind (its CRD from sigs.k8s.io/gateway-api;
// no Gateway implementation runs here): a 50/50 split with a tag gets the HTTPRoutes
// net-gateway-api would make from the same Ingress, and uninstall takes them away with the
// rest while the Gateway API CRD, not Gantry's, stays.
func TestClusterModeGatewayAPI(t *testing.T) {
	c := startPlainCluster(t)
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("finding sigs.k8s.io/gateway-api: %v", err)
	}
	crd := filepath.Join(strings.TrimSpace(string(dir)), "config", "crd", "standard", "gateway.networking.k8s.io_httproutes.yaml")
	c.mustKubectl("apply", "--server-side", "-f", crd)
	c.eventually("the HTTPRoute CRD established", func(out string) bool { return out == "True" },
		"get", "crd", "httproutes.gateway.networking.k8s.io", "-o", "jsonpath={.status.conditions[?(@.type=='Established')].status}")

	// Two replicas: one leads and is ready, the other waits.
	c.install(t, "--replicas", "2", "--ingress", "gateway-api", "--gateway-api-gateway", "gateways/external", "--gateway-api-local-gateway", "gateways/local")
	leader := c.leader(t)
	// Tags by header too (Knative's tag-header-based-routing), so the main host's route has
	// a Knative-Serving-Tag match.
	c.mustKubectl("-n", "gantry-system", "patch", "configmap", "config-features", "--type=merge", "-p", `{"data":{"tag-header-based-routing":"enabled"}}`)
	// No burst capacity asked: a revision with a ready pod takes requests itself (mode
	// Serve), so its Service points at its pod, not at the activator.
	c.mustKubectl("-n", "gantry-system", "patch", "configmap", "config-autoscaler", "--type=merge", "-p", `{"data":{"target-burst-capacity":"0"}}`)
	c.helloSplit(t)

	// The Services the HTTPRoutes name exist: <revision>, port 80, no selector, Knative's
	// labels, owned by the revision.
	for _, rev := range []string{"hello-00001", "hello-00002"} {
		out := c.mustKubectl("get", "service", rev, "-o",
			`jsonpath={.spec.ports[0].name}:{.spec.ports[0].port} selector={.spec.selector} {.metadata.labels.networking\.internal\.knative\.dev/serviceType} {.metadata.labels.serving\.knative\.dev/revision} {.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}`)
		if want := "http:80 selector= Public " + rev + " Revision/" + rev; out != want {
			t.Errorf("Service %s:\n got %s\nwant %s", rev, out, want)
		}
	}
	servicesVersion := c.mustKubectl("get", "service", "hello-00001", "hello-00002", "-o", "jsonpath={.items[*].metadata.resourceVersion}")
	// hello-00001 has its pod (its window is 60 s), in mode Serve: its Service's slice is its
	// pod's queue-proxy, and a request there with the HTTPRoute's headers gets its answer.
	poll.Until(t, "hello-00001's Service points at its pod", time.Minute, func(context.Context) (bool, error) {
		pods, err := c.readyIPs("default", "serving.knative.dev/revision=hello-00001")
		if err != nil {
			return false, err
		}
		addrs, err := c.backendAddrs("hello-00001")
		if err != nil {
			return false, err
		}
		return pods != "" && addrs == pods+" :8012", fmt.Errorf("slice %q, ready pods %q, kpa %s", addrs, pods,
			c.kubectlOrErr("get", "kpa", "hello-00001", "-o", "jsonpath={.status.mode}"))
	})
	if out, err := c.getBackend("hello-00001", "hello.default.localhost", true); err != nil || out != "Hello World!" {
		t.Fatalf("hello-00001 through its Service: %q, %v", out, err)
	}
	// hello-00002 (window 6 s) goes to zero: its Service's slice becomes the activator's
	// endpoint (the leader's pod, port 8012). A request without the headers is refused there;
	// with them it wakes the revision and gets its answer.
	poll.Until(t, "hello-00002 at zero, its Service pointing at the activator", 3*time.Minute, func(context.Context) (bool, error) {
		pods, err := c.kubectl("get", "pods", "-l", "serving.knative.dev/revision=hello-00002", "-o", "name")
		if err != nil {
			return false, err
		}
		activator, err := c.readyIPs("gantry-system", "app=gantry-controller")
		if err != nil {
			return false, err
		}
		addrs, err := c.backendAddrs("hello-00002")
		if err != nil {
			return false, err
		}
		return pods == "" && activator != "" && addrs == activator+" :8012", fmt.Errorf("pods %q, slice %q, activator %q", pods, addrs, activator)
	})
	if _, err := c.getBackend("hello-00002", "two-hello.default.localhost", false); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("at the activator without the revision headers: %v, want 400", err)
	}
	began := time.Now()
	if out, err := c.getBackend("hello-00002", "two-hello.default.localhost", true); err != nil || out != "Hello Two!" {
		t.Fatalf("hello-00002 from zero through its Service: %q, %v", out, err)
	}
	t.Logf("hello-00002 answered from zero through its Service in %s", time.Since(began).Round(time.Millisecond))
	// Now with its pod ready, its Service points at the pod again.
	poll.Until(t, "hello-00002's Service points at its pod", time.Minute, func(context.Context) (bool, error) {
		pods, err := c.readyIPs("default", "serving.knative.dev/revision=hello-00002")
		if err != nil {
			return false, err
		}
		addrs, err := c.backendAddrs("hello-00002")
		if err != nil {
			return false, err
		}
		return pods != "" && addrs == pods+" :8012", fmt.Errorf("slice %q, ready pods %q", addrs, pods)
	})
	// Written once: what the controller builds is what the API server keeps, so the
	// reconciles that followed (the modes, the pods) found nothing to update in them.
	if out := c.kubectlOrErr("get", "service", "hello-00001", "hello-00002", "-o", "jsonpath={.items[*].metadata.resourceVersion}"); out != servicesVersion {
		t.Errorf("the revisions' Services were written again: resource versions %q, then %q", servicesVersion, out)
	}

	// The HTTPRoutes in the cluster are what the translation makes of the Ingress there.
	var ing netv1alpha1.Ingress
	if err := json.Unmarshal([]byte(c.mustKubectl("get", "ingresses.networking.internal.knative.dev", "hello", "-o", "json")), &ing); err != nil {
		t.Fatal(err)
	}
	want := gatewayapi.MakeHTTPRoutes(&ing, gatewayapi.Gateways{
		External: types.NamespacedName{Namespace: "gateways", Name: "external"},
		Local:    types.NamespacedName{Namespace: "gateways", Name: "local"},
	}, nil) // both revisions HTTP/1
	if len(want) != 4 { // hello and two-hello, each public and cluster-local
		t.Fatalf("%d HTTPRoutes made from the Ingress, want 4", len(want))
	}
	for _, w := range want {
		var got gwv1.HTTPRoute
		c.eventually("HTTPRoute "+w.Name, func(out string) bool {
			got = gwv1.HTTPRoute{}
			return json.Unmarshal([]byte(out), &got) == nil && equality.Semantic.DeepDerivative(w.Spec, got.Spec)
		}, "get", "httproutes.gateway.networking.k8s.io", w.Name, "-o", "json")
		if !metav1.IsControlledBy(&got, &ing) {
			t.Errorf("HTTPRoute %s is not owned by Ingress hello", w.Name)
		}
	}
	// What net-gateway-api makes of a split and a tag, spelled out.
	out := c.mustKubectl("get", "httproutes.gateway.networking.k8s.io", "hello.default.localhost", "-o",
		`jsonpath={.spec.rules[0].matches[0].headers[0].name}={.spec.rules[0].matches[0].headers[0].value} {.spec.rules[0].backendRefs[*].name} | {.spec.rules[1].backendRefs[*].name} {.spec.rules[1].backendRefs[*].weight} {.spec.parentRefs[0].namespace}/{.spec.parentRefs[0].name}`)
	if want := "Knative-Serving-Tag=two hello-00002 | hello-00001 hello-00002 50 50 gateways/external"; out != want {
		t.Errorf("HTTPRoute hello.default.localhost:\n got %s\nwant %s", out, want)
	}
	// Gantry's gateway still serves the Routes.
	poll.Until(t, "two-hello answers through the installed gateway", time.Minute, func(context.Context) (bool, error) {
		out, err := c.get("two-hello.default.localhost")
		if err != nil {
			return false, err
		}
		return out == "Hello Two!", fmt.Errorf("answer %q", out)
	})

	// The leader goes; the other replica takes the lease and serves.
	c.mustKubectl("-n", "gantry-system", "delete", "pod", leader, "--wait=false")
	poll.Until(t, "another replica leads", 2*time.Minute, func(context.Context) (bool, error) {
		holder, err := c.kubectl("-n", "gantry-system", "get", "lease", "gantry-serving-controllers", "-o", "jsonpath={.spec.holderIdentity}")
		if err != nil {
			return false, err
		}
		return holder != "" && !strings.HasPrefix(holder, leader), fmt.Errorf("holder %q", holder)
	})
	poll.Until(t, "two-hello answers through the new leader", time.Minute, func(context.Context) (bool, error) {
		out, err := c.get("two-hello.default.localhost")
		if err != nil {
			return false, err
		}
		return out == "Hello Two!", fmt.Errorf("answer %q", out)
	})

	// A rollout ends although only the leader is ready.
	c.mustKubectl("-n", "gantry-system", "rollout", "restart", "deployment/gantry-controller")
	poll.Until(t, "the rollout of gantry-controller", 3*time.Minute, func(context.Context) (bool, error) {
		out, err := c.kubectl("-n", "gantry-system", "get", "deployment", "gantry-controller", "-o",
			"jsonpath={.metadata.generation}={.status.observedGeneration} {.status.updatedReplicas} {.status.replicas} {.status.readyReplicas}")
		if err != nil {
			return false, err
		}
		var gen, observed, updated, replicas, ready int
		if _, err := fmt.Sscanf(out, "%d=%d %d %d %d", &gen, &observed, &updated, &replicas, &ready); err != nil {
			return false, fmt.Errorf("status %q", out)
		}
		return gen == observed && updated == 2 && replicas == 2 && ready == 1, fmt.Errorf("status %q", out)
	})
	c.leader(t)
	// The revisions' Services follow the new leader's activator.
	poll.Until(t, "hello-00002 answers through its Service after the rollout", 2*time.Minute, func(context.Context) (bool, error) {
		out, err := c.getBackend("hello-00002", "two-hello.default.localhost", true)
		if err != nil {
			return false, err
		}
		return out == "Hello Two!", fmt.Errorf("answer %q", out)
	})

	// Installed again with the default ingress: what gateway-api made goes (the revisions'
	// Services and slices, the HTTPRoutes, the activator's Service), and the gateway serves.
	c.install(t)
	// Through the gateway first: time for a controller that should be gone to make again what
	// was removed, were one left.
	poll.Until(t, "two-hello answers through the gateway after the switch", time.Minute, func(context.Context) (bool, error) {
		out, err := c.get("two-hello.default.localhost")
		if err != nil {
			return false, err
		}
		return out == "Hello Two!", fmt.Errorf("answer %q", out)
	})
	time.Sleep(2 * time.Second)
	for what, args := range map[string][]string{
		"the revisions' backend Services": {"get", "service", "-n", "default", "-l", "networking.internal.knative.dev/serviceType=Public", "-o", "name"},
		"their EndpointSlices":            {"get", "endpointslices", "-A", "-l", "endpointslice.kubernetes.io/managed-by=gateway-api.gantry.dev", "-o", "name"},
		"the HTTPRoutes":                  {"get", "httproutes.gateway.networking.k8s.io", "-A", "-o", "name"},
		"the activator's Service":         {"get", "service", "-n", "gantry-system", "--field-selector", "metadata.name=gantry-activator", "-o", "name"},
	} {
		if out, err := c.kubectl(args...); err != nil || out != "" {
			t.Errorf("after a re-install with the default ingress, %s are left: %q, %v", what, out, err)
		}
	}

	c.uninstall(t)
	if out, err := c.kubectl("get", "httproutes.gateway.networking.k8s.io", "-A", "-o", "name"); err != nil || out != "" {
		t.Errorf("HTTPRoutes left: %q, %v", out, err)
	}
	c.mustKubectl("get", "crd", "httproutes.gateway.networking.k8s.io")
}

// TestClusterModeScaleToZeroAfterBurst: in cluster mode a revision goes to zero after a burst
// of requests through the installed gateway as soon as its window and grace period allow, as
// in standalone mode (10-12 s with these settings). It used to keep its pod for minutes in
// about one run of three: the autoscaler's metric window kept a floating-point residue of the
// burst (see metrics.Window), which the decider rounded up to one pod.
func TestClusterModeScaleToZeroAfterBurst(t *testing.T) {
	c := startPlainCluster(t)
	c.install(t)
	// Each decision in the controller's log, for the failure message.
	c.mustKubectl("-n", "gantry-system", "patch", "deployment", "gantry-controller", "--type=json", "-p",
		`[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--log-level=debug"}]`)
	c.rolledOut(t)
	digest := buildImageByDigest(t, c.ports[4], "hello")
	c.mustKubectl("-n", "gantry-system", "patch", "configmap", "config-autoscaler", "--type=merge", "-p", `{"data":{"scale-to-zero-grace-period":"6s"}}`)
	applyYAML(t, c.server, fmt.Sprintf(`apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: burst, namespace: default}
spec:
  template:
    metadata:
      annotations: {autoscaling.knative.dev/window: "6s"}
    spec:
      containers:
      - image: %s
`, digest))
	c.eventually("burst ready", func(out string) bool { return out == "True" },
		"get", "ksvc", "burst", "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}")
	poll.Until(t, "burst answers through the installed gateway", time.Minute, func(context.Context) (bool, error) {
		out, err := c.get("burst.default.localhost")
		return err == nil && strings.HasPrefix(out, "Hello"), err
	})
	// 8 clients, 15 requests each, through the gateway and the activator.
	const workers, each = 8, 15
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for range each {
				if _, err := c.get("burst.default.localhost"); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatalf("burst: %v", err)
		}
	}
	end := time.Now()
	lastDecision := func() string {
		logs := c.kubectlOrErr("-n", "gantry-system", "logs", "deploy/gantry-controller", "--since=10s")
		last := ""
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, `"msg":"decision"`) && strings.Contains(l, "burst-00001") {
				last = l
			}
		}
		return last
	}
	poll.Until(t, "burst-00001 at zero pods", 90*time.Second, func(context.Context) (bool, error) {
		pods, err := c.kubectl("get", "pods", "-l", "serving.knative.dev/revision=burst-00001", "-o", "name")
		if err != nil {
			return false, err
		}
		return pods == "", fmt.Errorf("%s after the burst: pods %q, kpa %s, last decision %s", time.Since(end).Round(time.Second), pods,
			c.kubectlOrErr("get", "kpa", "burst-00001", "-o", "jsonpath={.status.desiredScale}/{.status.actualScale} {.status.mode}"), lastDecision())
	})
	took := time.Since(end)
	t.Logf("burst-00001 at zero pods %s after the burst", took.Round(time.Second))
	// Window 6 s, then the grace period 6 s; the pod's termination and the polls add a few.
	if took > 40*time.Second {
		t.Errorf("burst-00001 took %s to reach zero pods after the burst, want under 40 s; last decision %s", took.Round(time.Second), lastDecision())
	}
}

// rolledOut waits for the single controller replica to be rolled out and ready after a
// change of its Deployment.
func (c *plainCluster) rolledOut(t *testing.T) {
	t.Helper()
	poll.Until(t, "the controller rolled out and ready", 3*time.Minute, func(context.Context) (bool, error) {
		out, err := c.kubectl("-n", "gantry-system", "get", "deployment", "gantry-controller", "-o",
			"jsonpath={.metadata.generation} {.status.observedGeneration} {.status.updatedReplicas} {.status.replicas} {.status.readyReplicas}")
		if err != nil {
			return false, err
		}
		f := strings.Fields(out)
		return len(f) == 5 && f[0] == f[1] && f[2] == "1" && f[3] == "1" && f[4] == "1", fmt.Errorf("generation, observed, updated, replicas, ready: %q", out)
	})
}
