package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gantry-run/gantry/internal/tracing/tracingtest"
)

// TestTracingColdRequest sends a request that carries a client's trace context to a service
// at zero and reads the spans the server and the pod's queue-proxy export to a collector in
// the test: one trace, chained client → gateway → activator → queue-proxy, with the wait
// for the pod as a span of its own.
func TestTracingColdRequest(t *testing.T) {
	requireNode(t)
	rcv := tracingtest.Start()
	defer rcv.Close()
	dataDir := newDataDir(t)
	ports := freePorts(t)
	s := startServer(t, dataDir, ports, "--otlp-endpoint="+rcv.URL(), "--otlp-sampling-ratio=0")
	s.mustKubectl("patch", "configmap", "config-autoscaler", "-n", "gantry-system", "--type=merge",
		"-p", `{"data":{"allow-zero-initial-scale":"true"}}`)
	img := buildImage(t, ports[4], "hello")
	manifest := filepath.Join(t.TempDir(), "traced.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: traced
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/initial-scale: "0"
    spec:
      containers:
        - image: `+img+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.mustKubectl("apply", "-f", manifest)
	s.eventually("the traced service Ready", func(out string) bool { return out == "True" },
		"get", "ksvc", "traced", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	if out := s.mustKubectl("get", "deployment", "traced-00001-deployment", "-o", "jsonpath={.spec.replicas}"); out != "0" {
		t.Fatalf("the revision has %s pods, want none before the first request", out)
	}

	const clientTrace, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest(http.MethodGet, "http://traced.default.localhost:"+strconv.Itoa(ports[6])+"/", nil)
	// Sampled by the client: recorded although the server samples none of its own traces.
	req.Header.Set("Traceparent", "00-"+clientTrace+"-"+clientSpan+"-01")
	resp, err := localhostClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("cold request: %d", resp.StatusCode)
	}

	spans := map[string]tracingtest.Span{}
	for deadline := time.Now().Add(30 * time.Second); len(spans) < 4 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		for _, sp := range rcv.Spans() {
			if sp.TraceID == clientTrace {
				spans[sp.Name] = sp
			}
		}
	}
	gw, act, wait, qp := spans["gateway"], spans["activator"], spans["activator.wait_for_pod"], spans["queue-proxy"]
	if gw.SpanID == "" || act.SpanID == "" || wait.SpanID == "" || qp.SpanID == "" {
		t.Fatalf("spans of the client's trace: %+v; want gateway, activator, activator.wait_for_pod, queue-proxy", spans)
	}
	if gw.ParentID != clientSpan || act.ParentID != gw.SpanID || wait.ParentID != act.SpanID || qp.ParentID != act.SpanID {
		t.Fatalf("spans not chained client → gateway → activator → (wait, queue-proxy): %+v", spans)
	}
	if wait.Attrs["gantry.cold_start"] != "true" {
		t.Errorf("the wait span does not say cold start: %+v", wait.Attrs)
	}
	if waited := time.Duration(wait.EndNanos - wait.StartNanos); waited < 10*time.Millisecond {
		t.Errorf("the cold start's wait for a pod took %s, want the pod's start", waited)
	}
	if qp.Service != "queue-proxy" || qp.Resource["gantry.revision"] != "traced-00001" || qp.Resource["k8s.namespace.name"] != "default" || act.Attrs["http.response.status_code"] != "200" {
		t.Errorf("queue-proxy span %+v, activator span %+v", qp, act)
	}
	t.Logf("cold start: wait for the pod %s of %s at the gateway", time.Duration(wait.EndNanos-wait.StartNanos), time.Duration(gw.EndNanos-gw.StartNanos))
	s.stop()
}
