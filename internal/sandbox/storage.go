package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
// containers' writable layers and its emptyDir volumes (what `du` counts, hard links once).
// The node compares it with PodSpec.EphemeralStorageBytes and evicts the pod when over.
func (m *Manager) StorageUsage(sandboxID string) (int64, error) {
	dir := m.sandboxDir(sandboxID)
	if _, err := os.Stat(filepath.Join(dir, "sandbox.json")); err != nil {
		return 0, fmt.Errorf("storage usage of sandbox %s: %w", sandboxID, ErrNotFound)
	}
	names, err := m.containerNames(sandboxID)
	if err != nil {
		return 0, err
	}
	roots := []string{filepath.Join(dir, "volumes")}
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
