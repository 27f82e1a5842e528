package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// OCI whiteout markers (image-spec layer.md) and their overlayfs forms.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	opaqueXattr    = "trusted.overlay.opaque"
)

// ErrUnsafeEntry marks a tar entry that would write outside the layer directory.
var ErrUnsafeEntry = errors.New("unsafe tar entry")

// ErrTooLarge marks a layer or image over the store's bounds (StoreOptions).
var ErrTooLarge = errors.New("image too large")

// unpackOptions bound one layer's extraction.
type unpackOptions struct {
	maxBytes   int64 // total file content
	maxEntries int64 // tar entries, of any type
	// image is what the image's layers may still unpack together; nil means no bound.
	image *imageBudget
	// checkSpace, when set, is asked before the first and every spaceCheckBytes of file
	// content whether the disk has room; its error stops the unpack.
	checkSpace func() error
	chown      bool // apply uid/gid from the tar (needs root)
}

// imageBudget is what the layers of one image may still unpack: file content and entries.
type imageBudget struct {
	bytes, entries int64
}

// spaceCheckBytes is how much file content is written between two checkSpace calls.
const spaceCheckBytes = 64 << 20

// unpackLayer extracts the uncompressed tar stream r into dir, an empty directory, so that
// dir can serve as an overlayfs lower directory: OCI whiteouts become overlayfs whiteouts
// (a 0:0 character device) and opaque markers become the trusted.overlay.opaque xattr.
// Every write goes through an os.Root, so no entry, symlink or hard link can reach outside
// dir; names with ".." components are refused outright.
func unpackLayer(r io.Reader, dir string, opts unpackOptions) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()

	type dirTime struct {
		name  string
		mtime time.Time
	}
	var dirTimes []dirTime
	var written, entries, nextCheck int64
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		if entries++; entries > opts.maxEntries {
			return fmt.Errorf("%w: the layer has more than %d entries", ErrTooLarge, opts.maxEntries)
		}
		if opts.image != nil {
			if opts.image.entries--; opts.image.entries < 0 {
				return fmt.Errorf("%w: the image's layers have more entries than allowed", ErrTooLarge)
			}
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			return err
		}
		if name == "." {
			// The layer root itself: only its metadata could apply; overlay ignores it.
			continue
		}
		parent, base := path.Split(name)
		parent = strings.TrimSuffix(parent, "/")
		if parent == "" {
			parent = "."
		}
		if parent != "." {
			if err := root.MkdirAll(parent, 0o755); err != nil {
				return entryErr(hdr.Name, err)
			}
		}

		// Whiteouts.
		if base == whiteoutOpaque {
			if err := setOpaque(root, parent); err != nil {
				return entryErr(hdr.Name, err)
			}
			continue
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			target := path.Join(parent, strings.TrimPrefix(base, whiteoutPrefix))
			if err := removeExisting(root, target); err != nil {
				return entryErr(hdr.Name, err)
			}
			if err := mknodAt(root, parent, path.Base(target), unix.S_IFCHR, 0); err != nil {
				return entryErr(hdr.Name, fmt.Errorf("creating overlay whiteout: %w", err))
			}
			continue
		}

		if hdr.Typeflag != tar.TypeDir {
			if err := removeExisting(root, name); err != nil {
				return entryErr(hdr.Name, err)
			}
		}
		mode := hdr.FileInfo().Mode()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if fi, err := root.Lstat(name); err == nil && !fi.IsDir() {
				if err := root.RemoveAll(name); err != nil {
					return entryErr(hdr.Name, err)
				}
			}
			if err := root.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return entryErr(hdr.Name, err)
			}
			dirTimes = append(dirTimes, dirTime{name, hdr.ModTime})
		case tar.TypeReg:
			if written += hdr.Size; written > opts.maxBytes {
				return fmt.Errorf("%w: layer content exceeds the limit of %d bytes", ErrTooLarge, opts.maxBytes)
			}
			if opts.image != nil {
				if opts.image.bytes -= hdr.Size; opts.image.bytes < 0 {
					return fmt.Errorf("%w: the image's layers hold more content than allowed", ErrTooLarge)
				}
			}
			if opts.checkSpace != nil && written >= nextCheck {
				if err := opts.checkSpace(); err != nil {
					return err
				}
				nextCheck = written + spaceCheckBytes
			}
			if err := writeFile(root, name, tr, hdr.Size); err != nil {
				return entryErr(hdr.Name, err)
			}
		case tar.TypeSymlink:
			// The target is resolved inside the container's root at run time; creating
			// it here writes nothing through it.
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return entryErr(hdr.Name, err)
			}
		case tar.TypeLink:
			target, err := entryName(hdr.Linkname)
			if err != nil || target == "." {
				return entryErr(hdr.Name, fmt.Errorf("%w: hard link to %q", ErrUnsafeEntry, hdr.Linkname))
			}
			if err := root.Link(target, name); err != nil {
				return entryErr(hdr.Name, err)
			}
			continue // a hard link shares its target's metadata
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			typ := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
			dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
			if err := mknodAt(root, parent, base, typ, int(dev)); err != nil {
				return entryErr(hdr.Name, err)
			}
		default:
			return entryErr(hdr.Name, fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag))
		}

		if opts.chown {
			if err := root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
				return entryErr(hdr.Name, err)
			}
		}
		if err := setXattrs(root, name, hdr); err != nil {
			return entryErr(hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeSymlink {
			continue // Linux symlinks have no mode of their own; times are not worth a syscall
		}
		// After chown: chown clears setuid and setgid bits.
		if err := root.Chmod(name, mode.Perm()|mode&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return entryErr(hdr.Name, err)
		}
		if hdr.Typeflag != tar.TypeDir {
			if err := root.Chtimes(name, hdr.AccessTime, hdr.ModTime); err != nil {
				return entryErr(hdr.Name, err)
			}
		}
	}
	// Directory times last: creating their contents moved them.
	for i := len(dirTimes) - 1; i >= 0; i-- {
		if err := root.Chtimes(dirTimes[i].name, time.Time{}, dirTimes[i].mtime); err != nil {
			return entryErr(dirTimes[i].name, err)
		}
	}
	return nil
}

// entryName cleans a tar entry name to a relative path and refuses any ".." component.
func entryName(n string) (string, error) {
	for _, c := range strings.Split(n, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: %q leaves the layer", ErrUnsafeEntry, n)
		}
	}
	clean := strings.TrimPrefix(path.Clean("/"+n), "/")
	if clean == "" {
		return ".", nil
	}
	return clean, nil
}

func entryErr(name string, err error) error {
	return fmt.Errorf("tar entry %q: %w", name, err)
}

// removeExisting removes name if it exists: a later entry replaces an earlier one.
func removeExisting(root *os.Root, name string) error {
	if _, err := root.Lstat(name); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return root.RemoveAll(name)
}

func writeFile(root *os.Root, name string, r io.Reader, size int64) error {
	f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = fmt.Errorf("short file: %d of %d bytes", n, size)
	}
	return err
}

// mknodAt creates a device node or fifo named base in the directory parent, through a
// directory descriptor opened inside root.
func mknodAt(root *os.Root, parent, base string, typ uint32, dev int) error {
	d, err := root.Open(parent)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Mknodat(int(d.Fd()), base, typ|0o600, dev)
}

// setOpaque marks a directory opaque for overlayfs.
func setOpaque(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Fsetxattr(int(d.Fd()), opaqueXattr, []byte("y"), 0); err != nil {
		return fmt.Errorf("setting %s on %s (needs root): %w", opaqueXattr, dir, err)
	}
	return nil
}

// setXattrs applies the extended attributes a tar entry carries as PAX records
// (SCHILY.xattr.*), such as file capabilities. Symlinks are skipped.
func setXattrs(root *os.Root, name string, hdr *tar.Header) error {
	const prefix = "SCHILY.xattr."
	if hdr.Typeflag == tar.TypeSymlink {
		return nil
	}
	var f *os.File
	defer func() {
		if f != nil {
			_ = f.Close()
		}
	}()
	for k, v := range hdr.PAXRecords {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		if f == nil {
			var err error
			if f, err = root.OpenFile(name, os.O_RDONLY|unix.O_PATH, 0); err != nil {
				return err
			}
		}
		// fsetxattr does not accept O_PATH descriptors; go through /proc/self/fd.
		p := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
		if err := unix.Setxattr(p, strings.TrimPrefix(k, prefix), []byte(v), 0); err != nil {
			return fmt.Errorf("setting xattr %s: %w", strings.TrimPrefix(k, prefix), err)
		}
	}
	return nil
}
