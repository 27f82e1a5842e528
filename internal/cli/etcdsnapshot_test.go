package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantry-run/gantry/internal/etcdsnapshot"
)

func TestPrintSnapshots(t *testing.T) {
	at := time.Date(2026, 7, 29, 10, 15, 0, 0, time.UTC)
	all := []etcdsnapshot.Snapshot{
		{File: etcdsnapshot.FileName(etcdsnapshot.Scheduled, at.Add(time.Hour)), Name: etcdsnapshot.Scheduled, Time: at.Add(time.Hour), Size: 5 << 20},
		{File: etcdsnapshot.FileName(etcdsnapshot.OnDemand, at), Name: etcdsnapshot.OnDemand, Time: at, Size: 1536},
	}
	var out bytes.Buffer
	if err := printSnapshots(&out, all, ""); err != nil {
		t.Fatal(err)
	}
	want := `NAME                           SIZE    CREATED
scheduled-20260729T111500Z.db  5 Mi    2026-07-29T11:15:00Z
on-demand-20260729T101500Z.db  1.5 Ki  2026-07-29T10:15:00Z
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}

	out.Reset()
	if err := printSnapshots(&out, nil, "json"); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(out.String()); got != "[]" {
		t.Errorf("json of none = %q, want []", got)
	}
	out.Reset()
	if err := printSnapshots(&out, all, "json"); err != nil {
		t.Fatal(err)
	}
	var back []etcdsnapshot.Snapshot
	if err := json.Unmarshal(out.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(all, back); diff != "" {
		t.Errorf("json round trip (-want +got):\n%s", diff)
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1 Ki", 1536: "1.5 Ki", 20 << 20: "20 Mi", 3 << 30: "3 Gi"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestEtcdSnapshotRefusals runs the commands with bad input: each error names the argument,
// and the data dir is not touched.
func TestEtcdSnapshotRefusals(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	junk := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(junk, []byte("not a snapshot"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"save", "--name", "Bad/Name"}, "--name"},
		{[]string{"save"}, "is not a gantry data dir"},
		{[]string{"prune", "--retention", "0"}, "--retention"},
		{[]string{"delete", "../x.db"}, "not a snapshot file name"},
		{[]string{"restore", filepath.Join(dataDir, "missing.db")}, "no such file"},
		{[]string{"restore", junk}, "no SHA-256"},
		{[]string{"restore", junk, "--etcd-peer-port", "0"}, "--etcd-peer-port"},
		{[]string{"ls", "-o", "yaml"}, "-o yaml"},
	} {
		root := NewRootCommand()
		root.SetArgs(append([]string{"etcd-snapshot", "--data-dir", dataDir}, tc.args...))
		root.SetOut(&bytes.Buffer{})
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("gantry etcd-snapshot %s = %v, want an error with %q", strings.Join(tc.args, " "), err, tc.want)
		}
		if _, err := os.Stat(dataDir); err == nil {
			t.Fatalf("gantry etcd-snapshot %s created the data dir", strings.Join(tc.args, " "))
		}
	}
}
