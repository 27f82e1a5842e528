package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gantry-run/gantry/internal/poll"
)

// snapshotFile is one entry of gantry etcd-snapshot ls -o json.
type snapshotFile struct {
	File string    `json:"file"`
	Name string    `json:"name"`
	Time time.Time `json:"time"`
}

// gantry runs the gantry binary and returns its stdout, failing the test on an error.
func gantry(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, gantryBin, args...).Output()
	if err != nil {
		var stderr string
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("gantry %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

func listSnapshots(t *testing.T, dataDir string) []snapshotFile {
	t.Helper()
	var all []snapshotFile
	if err := json.Unmarshal([]byte(gantry(t, "etcd-snapshot", "ls", "--data-dir", dataDir, "-o", "json")), &all); err != nil {
		t.Fatal(err)
	}
	return all
}

var savedRE = regexp.MustCompile(`^saved (\S+) \(`)

// TestEtcdSnapshot takes snapshots of a running server, on demand and on a schedule, then
// restores one onto the server's own data dir and onto a new one: each restored server serves
// the objects of the snapshot and none written after it.
func TestEtcdSnapshot(t *testing.T) {
	dataDir, ports := newDataDir(t), freePorts(t)
	etcdClientPort, etcdPeerPort := fmt.Sprint(ports[1]), fmt.Sprint(ports[2])
	// Objects are what is restored: no node, no pods.
	s := startServer(t, dataDir, ports, "--node=false", "--etcd-snapshot-interval=2s", "--etcd-snapshot-retention=2")

	s.mustKubectl("create", "configmap", "before", "--from-literal=k=v")
	s.mustKubectl("apply", "-f", "../../pkg/apis/serving/v1/testdata/helloworld-go.yaml")
	s.eventually("the Route of helloworld-go", func(out string) bool {
		return strings.Contains(out, "route.serving.knative.dev/helloworld-go")
	}, "get", "route", "-o", "name")

	out := gantry(t, "etcd-snapshot", "save", "--data-dir", dataDir, "--etcd-client-port", etcdClientPort, "--name", "e2e")
	m := savedRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("gantry etcd-snapshot save printed %q, want saved PATH (…)", out)
	}
	snapshot := m[1]
	if filepath.Dir(snapshot) != filepath.Join(dataDir, "snapshots") {
		t.Errorf("snapshot saved as %s, want it in <data-dir>/snapshots", snapshot)
	}
	s.mustKubectl("create", "configmap", "after", "--from-literal=k=v")

	t.Run("scheduled snapshots are taken and pruned", func(t *testing.T) {
		poll.Until(t, "two scheduled snapshots kept after a third was taken", 60*time.Second, func(context.Context) (bool, error) {
			var scheduled []string
			var ours bool
			for _, sn := range listSnapshots(t, dataDir) {
				switch sn.Name {
				case "scheduled":
					scheduled = append(scheduled, sn.File)
				case "e2e":
					ours = true
				}
			}
			if !ours {
				t.Fatal("the on-demand snapshot is gone: retention pruned a snapshot it does not own")
			}
			pruned := strings.Contains(s.output(), `msg="etcd snapshot pruned"`)
			return len(scheduled) == 2 && pruned, fmt.Errorf("scheduled %v, pruned logged %t", scheduled, pruned)
		})
		if !strings.Contains(s.output(), `msg="etcd snapshot saved"`) {
			t.Errorf("no saved line in the server's log:\n%s", s.output())
		}
	})

	t.Run("restore refuses a running server's data dir", func(t *testing.T) {
		stderr, _ := runToFailure(t, "etcd-snapshot", "restore", snapshot, "--data-dir", dataDir)
		if !strings.Contains(stderr, "is in use by another gantry server (pid") {
			t.Errorf("restore onto a running server: stderr %q, want an in-use error", stderr)
		}
	})
	s.stop()

	// wantRestored checks a server started on a restored data dir.
	wantRestored := func(t *testing.T, s *server) {
		t.Helper()
		s.mustKubectl("get", "configmap", "before")
		if out := s.mustKubectl("get", "ksvc", "helloworld-go", "-o", "name"); !strings.Contains(out, "helloworld-go") {
			t.Errorf("the Knative Service is not back: %q", out)
		}
		if out, err := s.kubectl("get", "configmap", "after"); err == nil || !strings.Contains(err.Error(), "NotFound") {
			t.Errorf("the ConfigMap written after the snapshot is back: %q, %v", out, err)
		}
	}

	t.Run("onto the server's own data dir", func(t *testing.T) {
		out := gantry(t, "etcd-snapshot", "restore", filepath.Base(snapshot), "--data-dir", dataDir, "--etcd-peer-port", etcdPeerPort)
		if !strings.Contains(out, "kept in "+filepath.Join(dataDir, "etcd.before-restore-")) {
			t.Errorf("restore printed %q, want where the old etcd data is kept", out)
		}
		s := startServer(t, dataDir, ports, "--node=false", "--etcd-snapshot-interval=0")
		wantRestored(t, s)
		s.stop()
	})

	t.Run("onto a new data dir", func(t *testing.T) {
		fresh, freshPorts := newDataDir(t), freePorts(t)
		out := gantry(t, "etcd-snapshot", "restore", snapshot, "--data-dir", fresh, "--etcd-peer-port", fmt.Sprint(freshPorts[2]))
		if !strings.Contains(out, "new certificates") {
			t.Errorf("restore into a new data dir printed %q, want a word on its new certificates", out)
		}
		s := startServer(t, fresh, freshPorts, "--node=false", "--etcd-snapshot-interval=0")
		wantRestored(t, s)
		s.stop()
	})

	t.Run("bad snapshots are refused and touch nothing", func(t *testing.T) {
		fresh := newDataDir(t)
		for _, tc := range []struct{ arg, want string }{
			{filepath.Join(dataDir, "snapshots", "missing.db"), "no such file"},
			{filepath.Join(dataDir, "gantry-data.json"), "no SHA-256"},
		} {
			stderr, _ := runToFailure(t, "etcd-snapshot", "restore", tc.arg, "--data-dir", fresh)
			if !strings.Contains(stderr, tc.want) || !strings.Contains(stderr, tc.arg) {
				t.Errorf("restore %s: stderr %q, want %q and the argument", tc.arg, stderr, tc.want)
			}
		}
		if out, err := exec.Command("ls", "-A", filepath.Dir(fresh)).Output(); err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("a refused restore left %q in the data dir's parent (%v)", out, err)
		}
	})
}
