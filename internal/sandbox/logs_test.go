package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-run/gantry/internal/poll"
)

// TestRotateLog: a log past its size is moved to .1 (the older ones one further, the oldest
// dropped) and the writer, which appends, goes on at the start of an empty file.
func TestRotateLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 1; i <= 6; i++ {
		fmt.Fprintf(w, "%d %s\n", i, strings.Repeat("x", 100))
		if err := rotateLog(path, 50, 3); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprintf(w, "7\n")
	if err := rotateLog(path, 50, 3); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"app.log": "7\n", "app.log.1": "6 ", "app.log.2": "5 "} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !strings.HasPrefix(string(b), want) {
			t.Errorf("%s = %.10q, %v; want it to start with %q", name, b, err, want)
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("app.log.3 exists (%v); only 3 files are kept", err)
	}
}

// TestLogsAreRotatedAndCounted: a container that prints 100 MiB, with the logs rotated as the
// node rotates them, leaves at most DefaultLogMaxFiles files of about DefaultLogMaxBytes (less
// than it printed: the oldest were dropped), and
// its logs count towards the sandbox's storage; a stopped pod's writable layers and emptyDirs
// are freed by ReleaseStorage, its logs kept.
func TestLogsAreRotatedAndCounted(t *testing.T) {
	m := newTestManager(t, testOptions(t))
	layer := testLayer(t)
	sb := createPod(t, m, PodSpec{ID: "logs", Name: "logs"})
	startContainer(t, m, sb.ID, ContainerSpec{Name: "app", Layers: []string{layer}, Args: []string{bin("probe"), "log", "100"}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if err := m.RotateLogs(DefaultLogMaxBytes, DefaultLogMaxFiles); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	logPath := m.LogPath(sb.ID, "app")
	poll.Until(t, "the container to print 100 MiB", time.Minute, func(context.Context) (bool, error) {
		b, err := os.ReadFile(logPath)
		return err == nil && strings.Contains(string(b), "done"), nil
	})
	cancel()
	files, _ := filepath.Glob(logPath + "*")
	var total int64
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
		// Between two rotations the log grows by what is written meanwhile: a MiB every 20
		// ms here, and a loaded machine delays the rotations.
		if fi.Size() > DefaultLogMaxBytes+6<<20 {
			t.Errorf("%s has %d bytes; want about %d at most", filepath.Base(f), fi.Size(), DefaultLogMaxBytes)
		}
	}
	if len(files) > DefaultLogMaxFiles || len(files) < 2 {
		t.Errorf("log files %v; want between 2 and %d", files, DefaultLogMaxFiles)
	}
	if total >= 100<<20 {
		t.Errorf("the logs keep %d bytes of the 100 MiB printed; want the oldest dropped", total)
	}
	used, err := m.StorageUsage(sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if used < total {
		t.Errorf("storage usage %d is less than the logs' %d bytes: logs are not counted", used, total)
	}

	// A writable layer and an emptyDir with 8 MiB each, then the pod stopped and its
	// storage released.
	vol, err := m.VolumeDir(sb.ID, "scratch")
	if err != nil {
		t.Fatal(err)
	}
	startContainer(t, m, sb.ID, ContainerSpec{Name: "fill", Layers: []string{layer}, Args: []string{bin("probe"), "write", "/big", "8388608"}})
	waitExited(t, m, sb.ID, "fill", 30*time.Second)
	if err := os.WriteFile(filepath.Join(vol, "big"), make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	before, err := m.StorageUsage(sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"app", "fill"} {
		if err := m.StopContainer(context.Background(), sb.ID, c, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.ReleaseStorage(sb.ID); err != nil {
		t.Fatal(err)
	}
	after, err := m.StorageUsage(sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if before-after < 16<<20 {
		t.Errorf("storage usage %d before ReleaseStorage, %d after; want 16 MiB freed", before, after)
	}
	if _, err := os.Stat(logPath); err != nil {
		t.Errorf("the log is gone after ReleaseStorage: %v", err)
	}
}
