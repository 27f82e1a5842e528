package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Dirs makes and removes the volumes' directories under Base, one per handle. Every
// operation goes through os.Root(Base): a handle is one plain name (CheckHandle), and a
// symbolic link inside a volume (a pod may plant one) is removed, never followed.
type Dirs struct {
	Base string
}

// Create makes the directory of handle with p's mode and owner. One that exists (a volume
// made before a restart, between making the directory and the PersistentVolume) is kept and
// given them again.
func (d Dirs) Create(handle string, p Parameters) error {
	if err := CheckHandle(handle); err != nil {
		return err
	}
	if err := os.MkdirAll(d.Base, 0o700); err != nil {
		return fmt.Errorf("shared volumes directory: %w", err)
	}
	root, err := os.OpenRoot(d.Base)
	if err != nil {
		return fmt.Errorf("shared volumes directory: %w", err)
	}
	defer root.Close()
	if err := root.Mkdir(handle, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("making volume %s: %w", handle, err)
	}
	fi, err := root.Lstat(handle)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("volume %s: %s exists and is not a directory", handle, d.Base)
	}
	if err := root.Lchown(handle, p.UID, p.GID); err != nil {
		return fmt.Errorf("volume %s: %w", handle, err)
	}
	// Mkdir's mode passed through the umask; Chmod sets the one asked for.
	if err := root.Chmod(handle, p.DirectoryPerms); err != nil {
		return fmt.Errorf("volume %s: %w", handle, err)
	}
	return nil
}

// Remove deletes the directory of handle and everything in it; one already gone is no
// error.
func (d Dirs) Remove(handle string) error {
	if err := CheckHandle(handle); err != nil {
		return err
	}
	root, err := os.OpenRoot(d.Base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("shared volumes directory: %w", err)
	}
	defer root.Close()
	if err := root.RemoveAll(handle); err != nil {
		return fmt.Errorf("removing volume %s: %w", handle, err)
	}
	return nil
}

// Exists reports whether the directory of handle exists.
func (d Dirs) Exists(handle string) bool {
	_, err := Resolve(d.Base, handle)
	return err == nil
}
