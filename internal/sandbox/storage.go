package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// VolumeDir makes (if needed) and returns the host directory of the sandbox's emptyDir
// volume name, to pass as a Mount's Source. It is removed with the sandbox and counts
// towards StorageUsage.
func (m *Manager) VolumeDir(sandboxID, name string) (string, error) {
	if err := checkID("volume name", name); err != nil {
		return "", fmt.Errorf("volume in sandbox %s: %w", sandboxID, err)
	}
	if _, err := os.Stat(filepath.Join(m.sandboxDir(sandboxID), "sandbox.json")); err != nil {
		return "", fmt.Errorf("volume %s in sandbox %s: %w", name, sandboxID, ErrNotFound)
	}
	dir := filepath.Join(m.sandboxDir(sandboxID), "volumes", name)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return "", fmt.Errorf("volume %s in sandbox %s: %w", name, sandboxID, err)
	}
	// World-writable like Kubernetes' emptyDir, so a container's non-root user can write.
	if err := os.Chmod(dir, 0o777); err != nil {
		return "", fmt.Errorf("volume %s in sandbox %s: %w", name, sandboxID, err)
	}
	return dir, nil
}

// StorageUsage measures the sandbox's ephemeral storage: the bytes allocated on disk by its
// containers' writable layers, its emptyDir volumes and its containers' logs, rotated ones
// included (what `du` counts, hard links once). The node compares it with
// PodSpec.EphemeralStorageBytes and evicts the pod when over. It holds the sandbox's lock, so
// it never sees a log in the middle of its rotation (copied, not yet truncated) counted twice.
func (m *Manager) StorageUsage(sandboxID string) (int64, error) {
	if err := checkID("sandbox ID", sandboxID); err != nil {
		return 0, err
	}
	unlock := m.lock(sandboxID)
	defer unlock()
	dir := m.sandboxDir(sandboxID)
	if _, err := os.Stat(filepath.Join(dir, "sandbox.json")); err != nil {
		return 0, fmt.Errorf("storage usage of sandbox %s: %w", sandboxID, ErrNotFound)
	}
	names, err := m.containerNames(sandboxID)
	if err != nil {
		return 0, err
	}
	roots := []string{filepath.Join(dir, "volumes"), filepath.Join(dir, "logs")}
	for _, n := range names {
		roots = append(roots, filepath.Join(dir, "containers", n, "upper"))
	}
	seen := map[[2]uint64]bool{}
	var total int64
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			fi, err := d.Info()
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // removed while we walk
				}
				return err
			}
			st, ok := fi.Sys().(*syscall.Stat_t)
			if !ok {
				total += fi.Size()
				return nil
			}
			key := [2]uint64{st.Dev, st.Ino}
			if st.Nlink > 1 {
				if seen[key] {
					return nil
				}
				seen[key] = true
			}
			total += st.Blocks * 512
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("storage usage of sandbox %s: %w", sandboxID, err)
		}
	}
	return total, nil
}

// ReleaseStorage frees what an evicted pod holds on disk but no longer needs: its
// containers' writable layers and the content of its emptyDir volumes. Its logs stay, for
// `kubectl logs`, until the sandbox is removed. Every container must have been stopped
// (StopContainer); a running one is left alone and reported.
func (m *Manager) ReleaseStorage(sandboxID string) error {
	unlock := m.lock(sandboxID)
	defer unlock()
	dir := m.sandboxDir(sandboxID)
	if _, err := os.Stat(filepath.Join(dir, "sandbox.json")); err != nil {
		return fmt.Errorf("releasing the storage of sandbox %s: %w", sandboxID, ErrNotFound)
	}
	// Never delete through a mount: a root filesystem still mounted is a running container's.
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	busy := map[string]bool{}
	for _, mp := range mounts {
		rel, err := filepath.Rel(dir, mp)
		if err == nil && strings.HasPrefix(rel, "containers"+string(filepath.Separator)) {
			busy[strings.Split(rel, string(filepath.Separator))[1]] = true
		}
	}
	names, err := m.containerNames(sandboxID)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if busy[n] {
			errs = append(errs, fmt.Errorf("container %s is still mounted", n))
			continue
		}
		for _, d := range []string{"upper", "work"} {
			if err := os.RemoveAll(filepath.Join(m.containerDir(sandboxID, n), d)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(busy) == 0 {
		vols, err := os.ReadDir(filepath.Join(dir, "volumes"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		for _, v := range vols {
			if err := removeContents(filepath.Join(dir, "volumes", v.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("releasing the storage of sandbox %s: %w", sandboxID, err)
	}
	return nil
}

// removeContents empties a directory, keeping it.
func removeContents(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
