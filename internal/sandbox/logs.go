package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Container logs are rotated as the kubelet rotates them by default (its
// containerLogMaxSize and containerLogMaxFiles): a log past 10 MiB is moved aside, and 5
// files are kept, the one being written included.
const (
	DefaultLogMaxBytes = 10 << 20
	DefaultLogMaxFiles = 5
)

// RotateLogs rotates the log of every container of every sandbox that has grown past
// maxBytes: <name>.log becomes <name>.log.1, .1 becomes .2, and so on, and the oldest past
// maxFiles-1 is dropped. The shim appends to the log (O_APPEND), so the log is copied and
// then truncated in place rather than renamed: what a container writes in the moment
// between the copy and the truncation is lost. Call it every few seconds; a container
// that writes faster than that between two calls is bounded by its ephemeral-storage
// limit, which its logs count towards (StorageUsage).
func (m *Manager) RotateLogs(maxBytes int64, maxFiles int) error {
	entries, err := os.ReadDir(filepath.Join(m.opts.Root, "sandboxes"))
	if err != nil {
		return fmt.Errorf("rotating logs: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || checkID("sandbox ID", e.Name()) != nil {
			continue
		}
		if err := m.rotateSandboxLogs(e.Name(), maxBytes, maxFiles); err != nil {
			errs = append(errs, fmt.Errorf("rotating the logs of sandbox %s: %w", e.Name(), err))
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) rotateSandboxLogs(id string, maxBytes int64, maxFiles int) error {
	unlock := m.lock(id)
	defer unlock()
	dir := filepath.Join(m.sandboxDir(id), "logs")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		if err := rotateLog(filepath.Join(dir, e.Name()), maxBytes, maxFiles); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// rotateLog rotates path when it is larger than maxBytes, keeping maxFiles files in all.
func rotateLog(path string, maxBytes int64, maxFiles int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() <= maxBytes {
		return err
	}
	rotated := func(i int) string { return path + "." + strconv.Itoa(i) }
	if maxFiles < 2 {
		return os.Truncate(path, 0)
	}
	for i := maxFiles - 1; i > 1; i-- {
		if err := os.Rename(rotated(i-1), rotated(i)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	tmp := rotated(1) + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	// Copy to the end as it is now, then once more for what came meanwhile, which narrows
	// the window in which writes are lost to the time between the last read and Truncate.
	_, err = io.Copy(out, f)
	if err == nil {
		_, err = io.Copy(out, f)
	}
	if err == nil {
		err = os.Truncate(path, 0)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, rotated(1))
}
