package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-run/gantry/internal/metering"
	"github.com/gantry-run/gantry/internal/poll"
)

// usage runs "gantry usage args..." against the server's data dir.
func (s *server) usage(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gantryBin, append([]string{"usage", "--data-dir", s.dataDir}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return string(out), fmt.Errorf("gantry usage %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

func (s *server) usageReport(t *testing.T, args ...string) metering.Report {
	t.Helper()
	out, err := s.usage(append(args, "-o", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	var rep metering.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("gantry usage -o json: %v\n%s", err, out)
	}
	return rep
}

// meteringProfileYAML selects the pods labelled metering=yes in the default namespace.
const meteringProfileYAML = `apiVersion: serverless.gantry.dev/v1alpha1
kind: ServerlessProfile
metadata:
  name: e2e
spec:
  selectors:
    - namespace: default
      labels:
        metering: "yes"
`

// meteredPodYAML is a pod the profile selects, with a CPU and memory request.
const meteredPodYAML = `apiVersion: v1
kind: Pod
metadata:
  name: %s
  labels:
    metering: "yes"
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 2
  containers:
    - name: app
      image: %s
      resources:
        requests:
          cpu: %s
          memory: %s
      env:
        - name: DELAY
          value: 1h
`

// TestMeteringSurvivesKill9: two serverless pods run; gantry server is killed with SIGKILL
// and started again while they run on; then they are deleted. Each pod has one usage record,
// from its start to its deletion — not to the crash, not twice — and gantry usage prints it
// as a table, csv and json.
func TestMeteringSurvivesKill9(t *testing.T) {
	requireNode(t)
	dataDir := newDataDir(t)
	ports := freePorts(t)
	s := startServer(t, dataDir, ports)
	img := buildImage(t, ports[4], "failing")
	apply := func(name string, content []byte) {
		t.Helper()
		manifest := filepath.Join(t.TempDir(), name+".yaml")
		if err := os.WriteFile(manifest, content, 0o600); err != nil {
			t.Fatal(err)
		}
		s.mustKubectl("apply", "-f", manifest)
	}
	apply("profile", []byte(meteringProfileYAML))
	s.eventually("ServerlessProfile e2e Active", func(out string) bool { return out == "Active" }, "get", "serverlessprofile", "e2e", "-o", "jsonpath={.status.phase}")
	// Sized by admission: 100m and 128Mi (+256Mi) → 0.25vCPU 0.5GB; 1 and 1Gi (+256Mi) → 1vCPU 2GB.
	requests := map[string][2]string{"m1": {"100m", "128Mi"}, "m2": {"1", "1Gi"}}
	sizes := map[string]string{"m1": "0.25vCPU 0.5GB", "m2": "1vCPU 2GB"}
	for name, r := range requests {
		apply(name, fmt.Appendf(nil, meteredPodYAML, name, img, r[0], r[1]))
	}
	starts := map[string]time.Time{}
	for name := range sizes {
		s.eventually(name+" Running", func(out string) bool { return out == "Running" }, "get", "pod", name, "-o", "jsonpath={.status.phase}")
		st, err := time.Parse(time.RFC3339, s.mustKubectl("get", "pod", name, "-o", "jsonpath={.status.startTime}"))
		if err != nil {
			t.Fatal(err)
		}
		starts[name] = st
		if got := s.mustKubectl("get", "pod", name, "-o", `jsonpath={.metadata.annotations.serverless\.gantry\.dev/capacity-provisioned}`); got != sizes[name] {
			t.Errorf("%s: capacity-provisioned %q, want %q", name, got, sizes[name])
		}
	}
	poll.Until(t, "two open usage records", 30*time.Second, func(context.Context) (bool, error) {
		rep := s.usageReport(t)
		return rep.Total.Pods == 2 && rep.Total.Running == 2, fmt.Errorf("total %+v", rep.Total)
	})

	s.kill()
	killedAt := time.Now()
	s = startServer(t, dataDir, ports)
	// The pods ran on while no server did; they are still open, still counted once.
	if rep := s.usageReport(t); rep.Total.Pods != 2 || rep.Total.Running != 2 {
		t.Fatalf("after kill -9 and restart: total %+v, want 2 pods, both running", rep.Total)
	}
	// Run past the one-minute minimum, so the billed time is the real one.
	if wait := time.Until(starts["m2"].Add(75 * time.Second)); wait > 0 {
		time.Sleep(wait)
	}
	deleteAt := time.Now()
	s.mustKubectl("delete", "pod", "m1", "m2", "--wait=true", "--timeout=60s")
	goneAt := time.Now()

	var rep metering.Report
	poll.Until(t, "both records closed", 30*time.Second, func(context.Context) (bool, error) {
		rep = s.usageReport(t, "--by", "service")
		return rep.Total.Pods == 2 && rep.Total.Running == 0, fmt.Errorf("total %+v", rep.Total)
	})
	for _, row := range rep.Rows {
		name := row.Key[strings.LastIndexByte(row.Key, '/')+1:]
		start, ok := starts[name]
		if !ok || row.Key != "default/Pod/"+name || row.Pods != 1 {
			t.Errorf("row %+v: want one pod per row, default/Pod/m1 and default/Pod/m2", row)
			continue
		}
		lo, hi := int64(deleteAt.Sub(start)/time.Second), int64(goneAt.Sub(start)/time.Second)+2
		if row.Seconds < lo || row.Seconds > hi {
			t.Errorf("%s: billed %d s, want its real end: between %d and %d s (killed at %d s)", name, row.Seconds, lo, hi, int64(killedAt.Sub(start)/time.Second))
		}
	}
	if len(rep.Rows) != 2 {
		t.Errorf("rows = %+v, want m1 and m2", rep.Rows)
	}
	// 0.25 vCPU + 1 vCPU over the two pods' seconds.
	if m1, m2 := rep.Rows[0], rep.Rows[1]; len(rep.Rows) == 2 && (m1.VCPUSeconds != 0.25*float64(m1.Seconds) || m2.VCPUSeconds != float64(m2.Seconds) || m2.GBSeconds != 2*float64(m2.Seconds)) {
		t.Errorf("sizes: %+v %+v", m1, m2)
	}

	table, err := s.usage()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table, "SERVICE  PODS  RUNNING  VCPU-SECONDS") || !strings.Contains(table, "default/Pod/m2") || !strings.Contains(table, "$0.04048 per vCPU-hour") {
		t.Errorf("gantry usage table:\n%s", table)
	}
	csv, err := s.usage("--by", "profile", "-o", "csv")
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(csv), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "profile,pods,running,seconds,") || !strings.HasPrefix(lines[1], "e2e,2,0,") {
		t.Errorf("gantry usage -o csv --by profile:\n%s", csv)
	}
	if _, err := s.usage("--by", "team"); err == nil || !strings.Contains(err.Error(), `--by: "team" is not one of`) {
		t.Errorf("gantry usage --by team: %v", err)
	}
	s.stop()
}
