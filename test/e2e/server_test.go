package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gantry-run/gantry/internal/podnet"
	"github.com/gantry-run/gantry/internal/poll"
)

func TestServerLifecycle(t *testing.T) {
	dataDir := newDataDir(t)
	ports := freePorts(t)
	s := startServer(t, dataDir, ports)

	// Ready means ready for a user: a pod created the moment the ready line appears is
	// accepted (the default ServiceAccount exists), not refused.
	t.Run("a pod can be created at once", func(t *testing.T) {
		if out, err := s.kubectl("run", "first", "--image=127.0.0.1:5000/hello", "--restart=Never"); err != nil {
			t.Fatalf("kubectl run right after the ready line: %v: %s", err, out)
		}
	})
	t.Run("ready", func(t *testing.T) {
		if out := s.mustKubectl("get", "--raw=/readyz"); out != "ok" {
			t.Errorf("kubectl get --raw=/readyz = %q, want ok", out)
		}
		// /readyz needs no credentials, only the CA.
		if got := httpsGet(t, dataDir, fmt.Sprintf("https://127.0.0.1:%d/readyz", ports[0])); got != "ok" {
			t.Errorf("GET /readyz = %q, want ok", got)
		}
	})
	t.Run("namespaces", func(t *testing.T) {
		out := s.mustKubectl("get", "namespaces", "-o", "name")
		for _, ns := range []string{"namespace/default", "namespace/kube-system"} {
			if !strings.Contains(out, ns) {
				t.Errorf("kubectl get namespaces = %q, want %s", out, ns)
			}
		}
	})
	t.Run("deployment gets replicaset and pods", func(t *testing.T) {
		s.mustKubectl("create", "deployment", "hello", "--image=127.0.0.1:5000/hello", "--replicas=2")
		s.eventually("a ReplicaSet for the Deployment", func(out string) bool {
			return strings.HasPrefix(strings.TrimSpace(out), "replicaset.apps/hello-")
		}, "get", "replicasets", "-l", "app=hello", "-o", "name")
		s.eventually("two Pending pods", func(out string) bool {
			return strings.Count(out, "Pending") == 2
		}, "get", "pods", "-l", "app=hello", "-o", "jsonpath={range .items[*]}{.status.phase}{\"\\n\"}{end}")
	})
	t.Run("data dir is locked while the server runs", func(t *testing.T) {
		stderr, _ := runToFailure(t, serverArgs(dataDir, freePorts(t))...)
		if !strings.Contains(stderr, "is in use by another gantry server (pid") {
			t.Errorf("second server on the same data dir: stderr %q, want an in-use error", stderr)
		}
	})

	t.Run("knative service applies unchanged and gets its children", func(t *testing.T) {
		s.mustKubectl("apply", "-f", "../../pkg/apis/serving/v1/testdata/helloworld-go.yaml")
		s.eventually("the Configuration, Revision and Route of helloworld-go", func(out string) bool {
			return strings.Contains(out, "configuration.serving.knative.dev/helloworld-go") &&
				strings.Contains(out, "revision.serving.knative.dev/helloworld-go-00001") &&
				strings.Contains(out, "route.serving.knative.dev/helloworld-go")
		}, "get", "knative", "-o", "name")
	})
	t.Run("invalid knative service is refused naming the field", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		manifest := `apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: broken
spec:
  template:
    spec:
      containers:
        - image: 127.0.0.1:5000/hello
  traffic:
    - latestRevision: true
      percent: 90
`
		if err := os.WriteFile(bad, []byte(manifest), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := s.kubectl("apply", "-f", bad)
		if err == nil || !strings.Contains(err.Error(), "traffic targets sum to 90, want 100: spec.traffic") {
			t.Errorf("kubectl apply of an invalid service: %v; want a refusal naming spec.traffic", err)
		}
		if out, _ := s.kubectl("get", "ksvc", "broken"); strings.Contains(out, "broken") {
			t.Error("the refused service was stored")
		}
	})

	var podIP string
	t.Run("pods run in sandboxes and answer on their IP", func(t *testing.T) {
		requireNode(t)
		img := buildImage(t, ports[4], "hello")
		s.mustKubectl("create", "deployment", "web", "--image="+img)
		podIP = s.eventually("a Running web pod with an IP", func(out string) bool {
			return strings.HasPrefix(out, "Running ") && len(strings.Fields(out)) == 2
		}, "get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].status.phase} {.items[0].status.podIP}")
		podIP = strings.Fields(podIP)[1]
		if got := httpGetRetry(t, "http://"+podIP+":8080/"); !strings.Contains(got, "Hello") {
			t.Errorf("GET pod IP = %q, want the hello reply", got)
		}
		s.eventually("the pod's log through kubectl logs", func(out string) bool {
			return strings.Contains(out, "listening")
		}, "logs", "deployment/web")
	})

	t.Run("a knative service answers at its URL", func(t *testing.T) {
		requireNode(t)
		img := buildImage(t, ports[4], "hello")
		manifest := filepath.Join(t.TempDir(), "hello.yaml")
		if err := os.WriteFile(manifest, []byte(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: hello
spec:
  template:
    spec:
      containers:
        - image: `+img+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s.mustKubectl("apply", "-f", manifest)
		s.eventually("the hello service Ready at http://hello.default.localhost", func(out string) bool {
			return out == "True http://hello.default.localhost"
		}, "get", "ksvc", "hello", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.url}`)
		// curl resolves *.localhost to loopback, as this request does by hand.
		if got := httpGetRetry(t, "http://hello.default.localhost:"+strconv.Itoa(ports[6])+"/"); !strings.Contains(got, "Hello") {
			t.Errorf("GET http://hello.default.localhost:%d/ = %q, want the hello reply", ports[6], got)
		}
	})

	t.Run("kubectl exec runs in the container and returns its exit code", func(t *testing.T) {
		requireNode(t)
		img := buildImage(t, ports[4], "runtime")
		s.mustKubectl("run", "rt", "--image="+img, "--restart=Never")
		s.eventually("the rt pod Running", func(out string) bool { return out == "Running" },
			"get", "pod", "rt", "-o", "jsonpath={.status.phase}")
		if _, err := s.kubectl("exec", "rt", "--", "/app", "-check-file", "/etc/hostname"); err != nil {
			t.Errorf("exec of a succeeding command: %v", err)
		}
		_, err := s.kubectl("exec", "rt", "--", "/app", "-check-file", "/no/such/file")
		if err == nil || !strings.Contains(err.Error(), "exit status 1") {
			t.Errorf("exec of a failing command: %v, want kubectl to exit 1", err)
		}
		s.mustKubectl("delete", "pod", "rt", "--wait=true", "--timeout=60s")
	})

	s.mustKubectl("create", "configmap", "survivor", "--from-literal=k=before-crash")
	s.kill()

	s = startServer(t, dataDir, ports)
	if nodeSkip == "" {
		// The gateway serves the Knative service again within 5 s of the ready line.
		began := time.Now()
		url := "http://hello.default.localhost:" + strconv.Itoa(ports[6]) + "/"
		poll.Until(t, "the hello service to answer after kill -9 and restart", 5*time.Second, func(ctx context.Context) (bool, error) {
			code, body, err := get(ctx, url)
			if err != nil || code != http.StatusOK {
				return false, fmt.Errorf("%d %q %w", code, body, err)
			}
			return true, nil
		})
		t.Logf("hello answered %s after the restart's ready line", time.Since(began).Round(time.Millisecond))
	}
	if !strings.Contains(s.output(), "firstStart=false") {
		t.Errorf("restart did not find its data dir: %s", s.output())
	}
	if out := s.mustKubectl("get", "configmap", "survivor", "-o", "jsonpath={.data.k}"); out != "before-crash" {
		t.Errorf("ConfigMap after kill -9 and restart = %q, want before-crash", out)
	}
	if out := s.mustKubectl("get", "ksvc", "helloworld-go", "-o", "name"); !strings.Contains(out, "helloworld-go") {
		t.Errorf("Knative Service after kill -9 and restart: %q", out)
	}
	if podIP != "" {
		// The sandbox outlived the server and was re-adopted: same pod, same address.
		if got := httpGetRetry(t, "http://"+podIP+":8080/"); !strings.Contains(got, "Hello") {
			t.Errorf("GET pod IP after kill -9 and restart = %q, want the hello reply", got)
		}
		if out := s.mustKubectl("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[*].status.podIP}"); out != podIP {
			t.Errorf("pod IPs after restart = %q, want the same pod at %s", out, podIP)
		}
	}
	s.stop()

	s = startServer(t, dataDir, ports)
	if out := s.mustKubectl("get", "configmap", "survivor", "-o", "jsonpath={.data.k}"); out != "before-crash" {
		t.Errorf("ConfigMap after clean stop and restart = %q, want before-crash", out)
	}
	s.stop()
	if nodeSkip == "" {
		// The pods' isolation rules stay with the pods a stopped server leaves; cleanup removes
		// both.
		rules := exec.Command("nft", "list", "table", "inet", podnet.TableName("gantry-e2e0"))
		if out, err := rules.CombinedOutput(); err != nil || !strings.Contains(string(out), "reject") {
			t.Errorf("the pods' isolation rules after a stop: %v\n%s", err, out)
		}
		out, err := exec.Command(gantryBin, "cleanup", "--data-dir", dataDir, "--bridge=gantry-e2e0", "--pod-cidr=10.246.0.0/16").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "removed sandbox of pod default/web-") {
			t.Errorf("gantry cleanup: %v\n%s", err, out)
		}
		if err := exec.Command("nft", "list", "table", "inet", podnet.TableName("gantry-e2e0")).Run(); err == nil {
			t.Error("the pods' isolation rules are still there after gantry cleanup")
		}
		// kube-proxy's rules go too when this server wrote them last; while another server
		// runs kube-proxy, or wrote them last, they stay, and cleanup says why.
		switch {
		case strings.Contains(string(out), "removed kube-proxy's rules"):
			if err := exec.Command("nft", "list", "table", "ip", "kube-proxy").Run(); err == nil {
				t.Error("kube-proxy's rules are still there after gantry cleanup said it removed them")
			}
		case !strings.Contains(string(out), "kube-proxy's rules left in place: "):
			t.Errorf("gantry cleanup said nothing of kube-proxy's rules:\n%s", out)
		}
	}

	t.Run("damaged etcd database is reported, not touched", func(t *testing.T) {
		db := filepath.Join(dataDir, "etcd", "member", "snap", "db")
		garbage := bytes.Repeat([]byte("not a bolt database "), 4096)
		if err := os.WriteFile(db, garbage, 0o600); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, dataDir)
		stderr, _ := runToFailure(t, serverArgs(dataDir, ports)...)
		wantOneLine(t, stderr, "etcd data in "+filepath.Join(dataDir, "etcd")+" is damaged")
		assertUnchanged(t, dataDir, before)
	})
}

func TestServerRefusesBadInput(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T) (args []string, dataDir string)
		wantErr string
	}{
		{
			name: "port in use",
			setup: func(t *testing.T) ([]string, string) {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = ln.Close() })
				ports := freePorts(t)
				ports[0] = ln.Addr().(*net.TCPAddr).Port
				dir := t.TempDir()
				return serverArgs(dir, ports), dir
			},
			wantErr: "--https-port: address 127.0.0.1:",
		},
		{
			name: "unknown scheduling policy",
			setup: func(t *testing.T) ([]string, string) {
				dir := t.TempDir()
				return append(serverArgs(dir, freePorts(t)), "--sched-policy=fifo"), dir
			},
			wantErr: `--sched-policy: "fifo" is not a scheduling policy: batch or normal`,
		},
		{
			name: "foreign data dir",
			setup: func(t *testing.T) ([]string, string) {
				dir := t.TempDir()
				if err := os.WriteFile(filepath.Join(dir, "thesis.tex"), []byte("years of work"), 0o600); err != nil {
					t.Fatal(err)
				}
				return serverArgs(dir, freePorts(t)), dir
			},
			wantErr: `is not a gantry data dir (it holds "thesis.tex"`,
		},
		{
			name: "corrupt marker",
			setup: func(t *testing.T) ([]string, string) {
				dir := t.TempDir()
				if err := os.WriteFile(filepath.Join(dir, "gantry-data.json"), []byte("\x00\x01garbage"), 0o600); err != nil {
					t.Fatal(err)
				}
				return serverArgs(dir, freePorts(t)), dir
			},
			wantErr: "is damaged: gantry-data.json",
		},
		{
			name: "data dir under a file",
			setup: func(t *testing.T) ([]string, string) {
				dir := t.TempDir()
				if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o600); err != nil {
					t.Fatal(err)
				}
				return serverArgs(filepath.Join(dir, "f", "data"), freePorts(t)), dir
			},
			wantErr: "cannot be created: not a directory",
		},
		{
			name: "read-only data dir",
			setup: func(t *testing.T) ([]string, string) {
				if os.Geteuid() != 0 {
					t.Skip("mounting a read-only filesystem needs root")
				}
				dir := t.TempDir()
				if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_RDONLY, "size=1m"); err != nil {
					t.Skipf("cannot mount a read-only tmpfs here: %v", err)
				}
				t.Cleanup(func() { _ = syscall.Unmount(dir, 0) })
				return serverArgs(dir, freePorts(t)), dir
			},
			wantErr: "is not writable: read-only file system",
		},
		{
			name: "bad flag value",
			setup: func(t *testing.T) ([]string, string) {
				dir := t.TempDir()
				return append(serverArgs(dir, freePorts(t)), "--service-cidr=10.0.0.0/300"), dir
			},
			wantErr: `--service-cidr: "10.0.0.0/300" is not a CIDR`,
		},
		{
			name: "bad egress policy",
			setup: func(t *testing.T) ([]string, string) {
				dir := t.TempDir()
				return append(serverArgs(dir, freePorts(t)), "--pod-egress-private=sometimes"), dir
			},
			wantErr: `--pod-egress-private: "sometimes" is not one of deny, allow`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, dir := tt.setup(t)
			before := snapshot(t, dir)
			stderr, elapsed := runToFailure(t, args...)
			wantOneLine(t, stderr, tt.wantErr)
			if elapsed > 20*time.Second {
				t.Errorf("took %s to refuse; want an immediate stop", elapsed)
			}
			assertUnchanged(t, dir, before)
		})
	}
}

// buildImage builds test/images/<name> into the server's embedded registry.
func buildImage(t *testing.T, registryPort int, name string) string {
	t.Helper()
	ref := fmt.Sprintf("127.0.0.1:%d/%s", registryPort, name)
	out, err := exec.Command(gantryBin, "image", "build", "../images/"+name, ref).CombinedOutput()
	if err != nil {
		t.Fatalf("gantry image build: %v\n%s", err, out)
	}
	return ref
}

// localhostClient resolves every *.localhost name to loopback, as curl and browsers do.
var localhostClient = &http.Client{
	Timeout: 5 * time.Second,
	Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err == nil && strings.HasSuffix(host, ".localhost") {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}},
}

// get fetches url once and returns its status and body.
func get(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := localhostClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// httpGetRetry fetches url, retrying for a few seconds while the pod comes up.
func httpGetRetry(t *testing.T, url string) string {
	t.Helper()
	client := localhostClient
	var body string
	poll.Until(t, "GET "+url, 10*time.Second, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, poll.Stop(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = string(b)
		return err == nil, err
	})
	return body
}

// runToFailure runs gantry with args, which must exit non-zero; it returns stderr.
func runToFailure(t *testing.T, args ...string) (string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, gantryBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	began := time.Now()
	err := cmd.Run()
	elapsed := time.Since(began)
	if err == nil {
		t.Fatalf("gantry %s succeeded, want failure", strings.Join(args, " "))
	}
	if ctx.Err() != nil {
		t.Fatalf("gantry %s did not stop within 60s\n%s", strings.Join(args, " "), stderr.String())
	}
	return stderr.String(), elapsed
}

func wantOneLine(t *testing.T, stderr, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if len(lines) != 1 {
		t.Errorf("stderr has %d lines, want one:\n%s", len(lines), stderr)
	}
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr = %q, want it to contain %q", stderr, want)
	}
}

// snapshot maps every regular file under dir (but the lock) to its content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == ".lock" {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			// Volumes hold links (..data and the files through it): record where they point.
			target, err := os.Readlink(path)
			files[path] = "-> " + target
			return err
		}
		b, err := os.ReadFile(path)
		files[path] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func assertUnchanged(t *testing.T, dir string, before map[string]string) {
	t.Helper()
	after := snapshot(t, dir)
	for path, content := range before {
		got, ok := after[path]
		switch {
		case !ok:
			t.Errorf("%s was removed", path)
		case got != content:
			t.Errorf("%s was changed", path)
		}
	}
	for path := range after {
		if _, ok := before[path]; !ok {
			t.Errorf("%s was created in a data dir the server refused", path)
		}
	}
}

// httpsGet fetches url anonymously, trusting the data dir's CA.
func httpsGet(t *testing.T, dataDir, url string) string {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(dataDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
