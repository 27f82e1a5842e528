package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-run/gantry/internal/poll"
)

// fileAnswer is the files test image's answer.
type fileAnswer struct {
	Body  string `json:"body"`
	Error string `json:"error"`
}

// fileRequest reads (body == "") or writes path through the files image at url's host.
func fileRequest(t *testing.T, base, path, body string) fileAnswer {
	t.Helper()
	method, r := http.MethodGet, io.Reader(nil)
	if body != "" {
		method, r = http.MethodPut, strings.NewReader(body)
	}
	var ans fileAnswer
	poll.Until(t, method+" "+path, 30*time.Second, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, method, base+"/file?path="+path, r)
		if err != nil {
			return false, poll.Stop(err)
		}
		resp, err := localhostClient.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("status %d", resp.StatusCode)
		}
		return true, json.NewDecoder(resp.Body).Decode(&ans)
	})
	return ans
}

// TestSharedStorageSurvivesARestart: two pods of a Deployment share a ReadWriteMany claim of
// the default class (a file written by one is read by the other), a Knative Service mounts the
// same claim once config-features allows it, and the file is still there, in the pods and the
// Service, after gantry server restarts.
func TestSharedStorageSurvivesARestart(t *testing.T) {
	requireNode(t)
	dataDir := newDataDir(t)
	ports := freePorts(t)
	s := startServer(t, dataDir, ports)
	img := buildImage(t, ports[4], "files")
	s.mustKubectl("-n", "gantry-system", "patch", "configmap", "config-features", "--type", "merge",
		"-p", `{"data":{"kubernetes.podspec-persistent-volume-claim":"enabled","kubernetes.podspec-persistent-volume-write":"enabled"}}`)
	manifest := filepath.Join(t.TempDir(), "shared.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: shared}
spec:
  accessModes: [ReadWriteMany]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: writers}
spec:
  replicas: 2
  selector: {matchLabels: {app: writers}}
  template:
    metadata: {labels: {app: writers}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: files
        image: `+img+`
        readinessProbe: {httpGet: {path: /file, port: 8080}, periodSeconds: 1}
        volumeMounts: [{name: data, mountPath: /data}]
      volumes:
      - name: data
        persistentVolumeClaim: {claimName: shared}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s.mustKubectl("apply", "-f", manifest)
	s.eventually("the claim Bound", func(out string) bool { return out == "Bound" }, "get", "pvc", "shared", "-o", "jsonpath={.status.phase}")
	ips := podIPs(t, s)
	if ans := fileRequest(t, "http://"+ips[0]+":8080", "/data/note", "kept across restarts"); ans.Error != "" {
		t.Fatalf("writing from the first pod: %s", ans.Error)
	}
	if ans := fileRequest(t, "http://"+ips[1]+":8080", "/data/note", ""); ans.Body != "kept across restarts" {
		t.Fatalf("the second pod reads %+v; want the first one's file", ans)
	}

	// The flag may reach the webhook a moment after the patch: retry the apply.
	ksvc := filepath.Join(t.TempDir(), "site.yaml")
	if err := os.WriteFile(ksvc, []byte(`apiVersion: serving.knative.dev/v1
kind: Service
metadata: {name: site}
spec:
  template:
    spec:
      containers:
      - image: `+img+`
        volumeMounts: [{name: data, mountPath: /data}]
      volumes:
      - name: data
        persistentVolumeClaim: {claimName: shared}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s.eventually("the Service accepted", func(string) bool { return true }, "apply", "-f", ksvc)
	s.eventually("the site service Ready", func(out string) bool { return out == "True" },
		"get", "ksvc", "site", "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
	site := "http://site.default.localhost:" + strconv.Itoa(ports[6])
	if ans := fileRequest(t, site, "/data/note", ""); ans.Body != "kept across restarts" {
		t.Fatalf("the Service reads %+v from the claim", ans)
	}

	s.stop()
	s = startServer(t, dataDir, ports)
	ips = podIPs(t, s)
	for _, ip := range ips {
		if ans := fileRequest(t, "http://"+ip+":8080", "/data/note", ""); ans.Body != "kept across restarts" {
			t.Errorf("after the restart, pod %s reads %+v", ip, ans)
		}
	}
	if ans := fileRequest(t, site, "/data/note", ""); ans.Body != "kept across restarts" {
		t.Errorf("after the restart, the Service reads %+v", ans)
	}
	s.stop()
}

// podIPs waits for the writers' two pods to be ready and returns their addresses.
func podIPs(t *testing.T, s *server) []string {
	t.Helper()
	s.eventually("two ready writers", func(out string) bool { return out == "2" },
		"get", "deployment", "writers", "-o", "jsonpath={.status.readyReplicas}")
	var ips []string
	s.eventually("the writers' addresses", func(out string) bool {
		ips = strings.Fields(out)
		return len(ips) == 2
	}, "get", "pods", "-l", "app=writers", "--field-selector=status.phase=Running", "-o", "jsonpath={.items[*].status.podIP}")
	return ips
}
