package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestAutoscalerKeepsABusyRevisionThroughARestart: a revision scaled up by load keeps its
// pods while gantry server restarts under that load; the autoscaler does not take the lost
// metric history for idleness.
func TestAutoscalerKeepsABusyRevisionThroughARestart(t *testing.T) {
	requireNode(t)
	dataDir := newDataDir(t)
	ports := freePorts(t)
	s := startServer(t, dataDir, ports)
	img := buildImage(t, ports[4], "autoscale")
	manifest := filepath.Join(t.TempDir(), "busy.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: busy
spec:
  template:
    metadata:
      annotations:
        autoscaling.knative.dev/target: "5"
        autoscaling.knative.dev/window: "10s"
    spec:
      containers:
        - image: `+img+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.mustKubectl("apply", "-f", manifest)
	s.eventually("the busy service Ready", func(out string) bool { return out == "True" },
		"get", "ksvc", "busy", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)

	// 20 clients of 100 ms requests against a target of 5 per pod: four pods. Requests fail
	// while the server restarts; only the scale is judged.
	url := "http://busy.default.localhost:" + strconv.Itoa(ports[6]) + "/?sleep=100"
	client := &http.Client{Timeout: 30 * time.Second, Transport: localhostClient.Transport}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
				resp, err := client.Do(req)
				if err != nil {
					time.Sleep(100 * time.Millisecond)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()

	replicas := func() int {
		out, err := s.kubectl("get", "deployment", "busy-00001-deployment", "-o", "jsonpath={.spec.replicas}")
		if err != nil {
			return -1
		}
		n, _ := strconv.Atoi(out)
		return n
	}
	s.eventually("four ready pods under load", func(out string) bool {
		n, err := strconv.Atoi(out)
		return err == nil && n >= 4
	}, "get", "deployment", "busy-00001-deployment", "-o", "jsonpath={.status.readyReplicas}")
	before := replicas()
	t.Logf("%d pods wanted under load before the restart", before)

	s.stop()
	s = startServer(t, dataDir, ports)
	// Watch the scale for two stable windows and more after the restart, the load going on.
	for end := time.Now().Add(25 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		if n := replicas(); n >= 0 && n < before-1 {
			t.Fatalf("after the restart the busy revision was scaled from %d to %d pods", before, n)
		}
	}
	s.stop()
}
