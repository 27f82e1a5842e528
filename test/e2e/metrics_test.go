package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/gantry-run/gantry/internal/freeport"
	"github.com/gantry-run/gantry/internal/poll"
	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/sched"
)

// requireBatch fails t unless every thread of process pid runs under SCHED_BATCH.
func requireBatch(t *testing.T, what string, pid int) {
	t.Helper()
	tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	if err != nil {
		t.Fatalf("threads of %s: %v", what, err)
	}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		if p, err := sched.Of(tid); err != nil || p != sched.Batch {
			t.Errorf("thread %d of %s (pid %d): policy %q, %v; want batch", tid, what, pid, p, err)
		}
	}
}

// socketConns counts the connections of process pid to a queue-proxy's socket. The accepted
// end of a unix connection lives in the connecting process's network namespace and carries
// the socket's path; ss pairs each of pid's sockets with its peer.
func socketConns(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "net", "unix"))
	if err != nil {
		t.Fatal(err)
	}
	accepted := map[string]bool{} // inodes
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 8 && f[5] == "03" && f[7] == contract.SocketDir+"/"+contract.SocketName {
			accepted[f[6]] = true
		}
	}
	out, err := exec.Command("ss", "-xpn").Output()
	if err != nil {
		t.Fatalf("ss -xpn: %v", err)
	}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		// u_str ESTAB 0 0 * <inode> * <peer inode> users:(("gantry",pid=N,fd=M))
		f := strings.Fields(line)
		if len(f) >= 9 && strings.Contains(f[8], fmt.Sprintf("pid=%d,", pid)) && accepted[f[7]] {
			n++
		}
	}
	return n
}

// knativeNames are metrics that keep Knative's exact names, which dashboards written for
// Knative query, although Prometheus's naming rules would want a _total suffix on a counter.
var knativeNames = map[string]bool{"revision_request_count": true}

// TestMetricsAfterTraffic sends requests to a service and reads the server's /metrics: the
// activator's request metrics and the autoscaler's state are there for the revision, the
// node's for the pod it started (its start latency, its image's pull), and the client
// library's linter finds nothing wrong with what is served, but Knative's own names.
func TestMetricsAfterTraffic(t *testing.T) {
	requireNode(t)
	metricsPort, err := freeport.Get(1)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := newDataDir(t)
	ports := freePorts(t)
	metricsAddr := "127.0.0.1:" + strconv.Itoa(metricsPort[0])
	s := startServer(t, dataDir, ports, "--metrics-address="+metricsAddr)
	img := buildImage(t, ports[4], "hello")
	manifest := filepath.Join(t.TempDir(), "counted.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: counted
spec:
  template:
    spec:
      containers:
        - image: `+img+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.mustKubectl("apply", "-f", manifest)
	s.eventually("the counted service Ready", func(out string) bool { return out == "True" },
		"get", "ksvc", "counted", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	url := "http://counted.default.localhost:" + strconv.Itoa(ports[6]) + "/"
	for range 20 {
		httpGetRetry(t, url)
	}
	// The two relays on the request path run under SCHED_BATCH: the server (the gateway's
	// process, --sched-policy's default) and the revision's queue-proxy.
	requireBatch(t, "gantry server", s.cmd.Process.Pid)
	pidFiles, _ := filepath.Glob(filepath.Join(dataDir, "sandboxes", "sandboxes", "*", "containers", "queue-proxy", "pid"))
	if len(pidFiles) == 0 {
		t.Error("no queue-proxy's pid file under the data dir")
	}
	for _, f := range pidFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		requireBatch(t, "queue-proxy", pid)
		requireCarriedQueueProxy(t, dataDir, pid)
	}
	// The gateway reached the pod through the queue-proxy's socket: the server holds
	// connections whose peers were accepted on it.
	if n := socketConns(t, s.cmd.Process.Pid); n == 0 {
		t.Error("the server holds no connection to a queue-proxy's socket after 20 requests")
	}

	// The requests served on a connection passed to the queue-proxy reach the server's
	// metrics within 100 ms (docs/serving.md).
	var text string
	poll.Until(t, "revision_request_count of counted-00001 with code 200 at 20", 5*time.Second, func(context.Context) (bool, error) {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return false, poll.Stop(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return false, poll.Stop(err)
		}
		text = string(body)
		count := 0.0
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, "revision_request_count{") && strings.Contains(line, `revision_name="counted-00001"`) && strings.Contains(line, `response_code="200"`) {
				count, _ = strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
			}
		}
		if count < 20 {
			return false, fmt.Errorf("it is %v", count)
		}
		return true, nil
	})
	for _, want := range []string{`revision_request_latencies_bucket{`, `autoscaler_desired_pods{`, `autoscaler_actual_pods{`} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	// The node started the revision's pod, pulling its image into an empty store.
	for _, series := range []string{
		"gantry_node_sandbox_start_duration_seconds_count",
		`gantry_node_image_pulls_total{result="pulled"}`,
		`gantry_node_image_pull_duration_seconds_count{result="pulled"}`,
		`gantry_node_pods{phase="Running"}`,
	} {
		if v, ok := sampleValue(text, series); !ok || v < 1 {
			t.Errorf("/metrics: %s is %v (present %t), want at least 1 after a pod started", series, v, ok)
		}
	}
	for _, series := range []string{`gantry_node_evictions_total{reason="disk_pressure"}`, `gantry_node_evictions_total{reason="ephemeral_storage_limit"}`} {
		if _, ok := sampleValue(text, series); !ok {
			t.Errorf("/metrics has no %s", series)
		}
	}
	// The embedded control plane's own (the API server, etcd, the scheduler), apart.
	components := httpGetRetry(t, "http://"+metricsAddr+"/metrics/components")
	for _, want := range []string{`apiserver_request_total{`, `etcd_server_has_leader `, `scheduler_schedule_attempts_total{`} {
		if !strings.Contains(components, want) {
			t.Errorf("/metrics/components has no %s", want)
		}
	}
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatalf("linting /metrics: %v", err)
	}
	for _, p := range problems {
		if !knativeNames[p.Metric] {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
	s.stop()
}

// sampleValue is the value of series (a metric name with its labels, as served) in the text
// exposition format.
func sampleValue(text, series string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// requireCarriedQueueProxy fails t unless process pid runs the queue-proxy binary the server
// installed from those it carries (internal/qpbin): the same file, not the gantry binary.
func requireCarriedQueueProxy(t *testing.T, dataDir string, pid int) {
	t.Helper()
	installed, _ := filepath.Glob(filepath.Join(dataDir, "bin", "queue-proxy-*"))
	if len(installed) != 1 {
		t.Errorf("queue-proxy binaries installed in the data dir: %v, want one", installed)
		return
	}
	want, err := os.Stat(installed[0])
	if err != nil {
		t.Fatal(err)
	}
	runs, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(want, runs) {
		t.Errorf("the queue-proxy (pid %d) does not run %s", pid, installed[0])
	}
	// Its name is its content's digest (reckoned by hack/build.sh).
	b, err := os.ReadFile(installed[0])
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(b); filepath.Base(installed[0]) != "queue-proxy-"+hex.EncodeToString(sum[:8]) {
		t.Errorf("%s is not named by its digest (%x…)", installed[0], sum[:8])
	}
}
