package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrSubPathEscapes is the refusal of a subPath that leaves its volume: a path with "..",
// or a symbolic link (a container may have planted it) that points outside.
var ErrSubPathEscapes = errors.New("resolves outside its volume")

// subPathsDir holds a container's staged subPath mounts: subpaths/<mount index>. The
// container cannot see it, let alone change it.
const subPathsDir = "subpaths"

// CleanSubPath checks a subPath as written in a pod and returns it cleaned: relative, with no
// ".." component (the API server refuses those too, but the node does not trust it), and
// not empty.
func CleanSubPath(p string) (string, error) {
	if p == "" || filepath.IsAbs(p) || strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("subPath %q: must be a relative path", p)
	}
	for _, part := range strings.Split(filepath.ToSlash(p), "/") {
		if part == ".." {
			return "", fmt.Errorf("subPath %q: %w (\"..\")", p, ErrSubPathEscapes)
		}
	}
	c := filepath.Clean(p)
	if c == "." {
		return "", fmt.Errorf("subPath %q: must name something inside the volume", p)
	}
	return c, nil
}

// openSubPath opens sub inside the directory root without leaving it: every component,
// symbolic links included, is resolved by the kernel beneath root (openat2's
// RESOLVE_BENEATH), so a link to "/" or "../.." fails instead of being followed to the host,
// and proc's magic links and other mounts are not crossed. A subPath that does not exist is
// made as a directory, as the kubelet does. The result is an O_PATH descriptor of what sub
// names now; the caller mounts that descriptor, never the path, so a link swapped in after
// the check changes nothing.
func openSubPath(root, sub string) (*os.File, error) {
	sub, err := CleanSubPath(sub)
	if err != nil {
		return nil, err
	}
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening volume %s: %w", root, err)
	}
	defer unix.Close(rootFD) //nolint:errcheck // an O_PATH descriptor: closing it cannot fail in a way that matters
	how := &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	fd, err := openat2(rootFD, sub, how)
	if errors.Is(err, unix.ENOENT) {
		if err := mkdirBeneath(rootFD, sub); err != nil {
			return nil, err
		}
		fd, err = openat2(rootFD, sub, how)
	}
	switch {
	case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ELOOP):
		return nil, fmt.Errorf("subPath %q: %w", sub, ErrSubPathEscapes)
	case errors.Is(err, unix.ENOSYS):
		return nil, fmt.Errorf("subPath %q: resolving it safely needs openat2 (Linux 5.6 or later)", sub)
	case err != nil:
		return nil, fmt.Errorf("subPath %q: %w", sub, err)
	}
	return os.NewFile(uintptr(fd), sub), nil
}

func openat2(dirFD int, path string, how *unix.OpenHow) (int, error) {
	for {
		fd, err := unix.Openat2(dirFD, path, how)
		if !errors.Is(err, unix.EINTR) && !errors.Is(err, unix.EAGAIN) {
			return fd, err
		}
	}
}

// mkdirBeneath makes the directories of sub under rootFD, one component at a time, each
// parent resolved as openSubPath resolves.
func mkdirBeneath(rootFD int, sub string) error {
	parts := strings.Split(sub, string(filepath.Separator))
	for i := range parts {
		dir, name := filepath.Join(parts[:i]...), parts[i]
		parentFD := rootFD
		if dir != "" {
			fd, err := openat2(rootFD, dir, &unix.OpenHow{
				Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
				Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
			})
			if errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ELOOP) {
				return fmt.Errorf("subPath %q: %w", sub, ErrSubPathEscapes)
			}
			if err != nil {
				return fmt.Errorf("subPath %q: %w", sub, err)
			}
			parentFD = fd
		}
		err := unix.Mkdirat(parentFD, name, 0o755)
		if parentFD != rootFD {
			_ = unix.Close(parentFD)
		}
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("making subPath %q: %w", sub, err)
		}
	}
	return nil
}

// stageSubPaths gives every mount with a SubPath a Source that the container cannot
// redirect: the subPath is opened inside its volume (openSubPath) and that descriptor is
// bind-mounted (through /proc/self/fd, which names the open file, not a path) onto
// dir/subpaths/<index>, a path only the node can change. runc then binds that mount point.
// The staged mounts stay until unstageSubPaths (the container stops or starts again).
func stageSubPaths(dir string, mounts []Mount) ([]Mount, error) {
	out := slices.Clone(mounts)
	for i, mt := range out {
		if mt.SubPath == "" {
			continue
		}
		src, err := stageSubPath(dir, i, mt)
		if err != nil {
			return nil, fmt.Errorf("volume mount %s: %w", mt.Destination, err)
		}
		out[i].Source, out[i].SubPath = src, ""
	}
	return out, nil
}

func stageSubPath(dir string, i int, mt Mount) (string, error) {
	f, err := openSubPath(mt.Source, mt.SubPath)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", err
	}
	base := filepath.Join(dir, subPathsDir)
	// Searchable by all: runc mounts from here as the pod's root when it has a user namespace.
	if err := os.MkdirAll(base, 0o711); err != nil {
		return "", err
	}
	target := filepath.Join(base, strconv.Itoa(i))
	if err := unmount(target); err != nil {
		return "", err
	}
	if err := os.RemoveAll(target); err != nil {
		return "", err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		err = os.Mkdir(target, 0o700)
	case unix.S_IFREG:
		err = os.WriteFile(target, nil, 0o600)
	default:
		return "", fmt.Errorf("subPath %q: only a directory or a regular file can be mounted", mt.SubPath)
	}
	if err != nil {
		return "", err
	}
	fdPath := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	if err := unix.Mount(fdPath, target, "", unix.MS_BIND, ""); err != nil {
		return "", fmt.Errorf("subPath %q: bind-mounting it: %w", mt.SubPath, err)
	}
	// Private, so nothing mounted or unmounted here reaches a container's copy, or back.
	if err := unix.Mount("", target, "", unix.MS_PRIVATE, ""); err != nil {
		_ = unmount(target)
		return "", fmt.Errorf("subPath %q: %w", mt.SubPath, err)
	}
	return target, nil
}

// unstageSubPaths unmounts and removes a container's staged subPath mounts.
func unstageSubPaths(dir string) error {
	base := filepath.Join(dir, subPathsDir)
	entries, err := os.ReadDir(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := unmount(filepath.Join(base, e.Name())); err != nil {
			return err
		}
	}
	// Never delete through a mount: what is left here must be plain files and directories.
	mounts, err := mountsUnder(base)
	if err != nil {
		return err
	}
	if len(mounts) > 0 {
		return fmt.Errorf("still mounted, not deleting %s: %v", base, mounts)
	}
	return os.RemoveAll(base)
}
