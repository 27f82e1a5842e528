package etcdsnapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Snapshot is one snapshot file in a snapshot directory.
type Snapshot struct {
	// File is the file's name in the directory; Path is its whole path.
	File string `json:"file"`
	Path string `json:"path"`
	// Name is the name it was taken under (OnDemand, Scheduled or the user's).
	Name string `json:"name"`
	// Time is when it was taken, from its file name.
	Time time.Time `json:"time"`
	Size int64     `json:"size"`
}

// List returns the snapshots in dir, newest first. Files that are not snapshots (other names,
// unfinished saves) are left out; a directory that does not exist holds none.
func List(dir string) ([]Snapshot, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing snapshots in %s: %w", dir, err)
	}
	var out []Snapshot
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		name, t, ok := ParseFileName(e.Name())
		if !ok {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed while listing
		}
		out = append(out, Snapshot{File: e.Name(), Path: filepath.Join(dir, e.Name()), Name: name, Time: t, Size: info.Size()})
	}
	sortNewestFirst(out)
	return out, nil
}

func sortNewestFirst(s []Snapshot) {
	sort.SliceStable(s, func(i, j int) bool {
		if !s[i].Time.Equal(s[j].Time) {
			return s[i].Time.After(s[j].Time)
		}
		return s[i].File < s[j].File
	})
}

// ErrNotFound is the error of Delete for a file that is not a snapshot in the directory.
var ErrNotFound = errors.New("no such snapshot")

// Delete removes the snapshots with the given file names from dir. Every name is checked
// before any file is removed: a name that is not a snapshot in dir removes nothing.
func Delete(dir string, files ...string) error {
	var errs []error
	for _, f := range files {
		if _, _, ok := ParseFileName(f); !ok || filepath.Base(f) != f {
			errs = append(errs, fmt.Errorf("%q is not a snapshot file name (as gantry etcd-snapshot ls shows them)", f))
			continue
		}
		if info, err := os.Lstat(filepath.Join(dir, f)); err != nil || !info.Mode().IsRegular() {
			errs = append(errs, fmt.Errorf("%s: %w in %s", f, ErrNotFound, dir))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, f := range files {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("deleting snapshot %s: %w", f, err))
		}
	}
	return errors.Join(errs...)
}

// Expired is what retention removes: of the snapshots taken under name, all but the newest
// keep. The others are never touched. keep below 1 keeps all: retention never removes the
// last snapshot.
func Expired(snapshots []Snapshot, name string, keep int) []Snapshot {
	if keep < 1 {
		return nil
	}
	var same []Snapshot
	for _, s := range snapshots {
		if s.Name == name {
			same = append(same, s)
		}
	}
	sortNewestFirst(same)
	if len(same) <= keep {
		return nil
	}
	return same[keep:]
}

// Prune deletes the snapshots Expired names and returns them.
func Prune(dir, name string, keep int) ([]Snapshot, error) {
	all, err := List(dir)
	if err != nil {
		return nil, err
	}
	var removed []Snapshot
	var errs []error
	for _, s := range Expired(all, name, keep) {
		if err := os.Remove(s.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("pruning snapshot %s: %w", s.File, err))
			continue
		}
		removed = append(removed, s)
	}
	return removed, errors.Join(errs...)
}
