package etcdsnapshot

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 7, 29, 12, 0, 0, 0, time.UTC)

// touch makes a snapshot file of size bytes named for name at t.
func touch(t *testing.T, dir, name string, at time.Time, size int) string {
	t.Helper()
	file := FileName(name, at)
	if err := os.WriteFile(filepath.Join(dir, file), make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func files(s []Snapshot) []string {
	out := []string{}
	for _, x := range s {
		out = append(out, x.File)
	}
	return out
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	a := touch(t, dir, Scheduled, t0, 10)
	b := touch(t, dir, OnDemand, t0.Add(time.Hour), 20)
	c := touch(t, dir, Scheduled, t0.Add(2*time.Hour), 30)
	// Not snapshots: an unfinished save, another file, a directory with a snapshot's name.
	for _, other := range []string{".scheduled-20260729T130000Z.db.tmp123", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, other), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, FileName(OnDemand, t0.Add(3*time.Hour))), 0o700); err != nil {
		t.Fatal(err)
	}

	got, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Snapshot{
		{File: c, Path: filepath.Join(dir, c), Name: Scheduled, Time: t0.Add(2 * time.Hour), Size: 30},
		{File: b, Path: filepath.Join(dir, b), Name: OnDemand, Time: t0.Add(time.Hour), Size: 20},
		{File: a, Path: filepath.Join(dir, a), Name: Scheduled, Time: t0, Size: 10},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}

	none, err := List(filepath.Join(dir, "missing"))
	if err != nil || len(none) != 0 {
		t.Errorf("List of a missing dir = %v, %v; want none, nil", none, err)
	}
}

func TestExpired(t *testing.T) {
	var all []Snapshot
	for i := range 5 {
		all = append(all, Snapshot{File: FileName(Scheduled, t0.Add(time.Duration(i)*time.Hour)), Name: Scheduled, Time: t0.Add(time.Duration(i) * time.Hour)})
	}
	all = append(all, Snapshot{File: FileName(OnDemand, t0.Add(-time.Hour)), Name: OnDemand, Time: t0.Add(-time.Hour)})

	for _, tc := range []struct {
		name string
		keep int
		want []string
	}{
		{Scheduled, 3, []string{FileName(Scheduled, t0.Add(time.Hour)), FileName(Scheduled, t0)}},
		{Scheduled, 5, []string{}},
		{Scheduled, 9, []string{}},
		{Scheduled, 1, []string{
			FileName(Scheduled, t0.Add(3*time.Hour)), FileName(Scheduled, t0.Add(2*time.Hour)),
			FileName(Scheduled, t0.Add(time.Hour)), FileName(Scheduled, t0),
		}},
		{Scheduled, 0, []string{}}, // never all
		{OnDemand, 1, []string{}},  // the other name's are not counted
		{"other", 1, []string{}},
	} {
		got := files(Expired(all, tc.name, tc.keep))
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Expired(%s, %d) (-want +got):\n%s", tc.name, tc.keep, diff)
		}
	}
}

func TestPrune(t *testing.T) {
	dir := t.TempDir()
	old := touch(t, dir, Scheduled, t0, 1)
	mid := touch(t, dir, Scheduled, t0.Add(time.Hour), 1)
	newest := touch(t, dir, Scheduled, t0.Add(2*time.Hour), 1)
	mine := touch(t, dir, OnDemand, t0.Add(-time.Hour), 1)

	removed, err := Prune(dir, Scheduled, 2)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{old}, files(removed)); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	left, _ := List(dir)
	if diff := cmp.Diff([]string{newest, mid, mine}, files(left)); diff != "" {
		t.Errorf("left (-want +got):\n%s", diff)
	}
}

func TestDelete(t *testing.T) {
	dir := t.TempDir()
	a := touch(t, dir, OnDemand, t0, 1)
	b := touch(t, dir, OnDemand, t0.Add(time.Hour), 1)

	// One bad name deletes nothing.
	for _, bad := range []string{FileName(OnDemand, t0.Add(5*time.Hour)), "../" + a, "notes.txt"} {
		if err := Delete(dir, a, bad); err == nil {
			t.Errorf("Delete(%s, %s) = nil, want an error", a, bad)
		}
		if left, _ := List(dir); len(left) != 2 {
			t.Fatalf("Delete with a bad name %q removed files: %v left", bad, files(left))
		}
	}
	if err := Delete(dir, a, b); err != nil {
		t.Fatal(err)
	}
	if left, _ := List(dir); len(left) != 0 {
		t.Errorf("after Delete: %v left", files(left))
	}
}
