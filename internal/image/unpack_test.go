package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// tarEntry is one entry of a hand-built layer.
type tarEntry struct {
	name     string
	typ      byte
	body     string
	mode     int64
	link     string
	uid, gid int
}

func buildTar(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: mode, Linkname: e.link,
			Uid: e.uid, Gid: e.gid, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("skipping: %s needs root (run the tests as root to cover it)", why)
	}
}

func unpackForTest(t *testing.T, entries []tarEntry) (string, error) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layer")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	err := unpackLayer(bytes.NewReader(buildTar(t, entries)), dir, unpackOptions{maxBytes: 1 << 20, maxEntries: 1000, chown: os.Geteuid() == 0})
	return dir, err
}

func TestUnpackWhiteouts(t *testing.T) {
	requireRoot(t, "creating overlay whiteouts (char devices, trusted.* xattrs)")
	dir, err := unpackForTest(t, []tarEntry{
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/.wh.passwd", body: ""},
		{name: "var/", typ: tar.TypeDir},
		{name: "var/.wh..wh..opq", body: ""},
		{name: "var/keep", body: "kept"},
		{name: "deep/er/.wh.gone", body: ""},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"etc/passwd", "deep/er/gone"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, p), &st); err != nil {
			t.Fatalf("whiteout %s: %v", p, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("whiteout %s: mode %o rdev %d, want char device 0:0", p, st.Mode, st.Rdev)
		}
	}
	for _, p := range []string{"etc/.wh.passwd", "var/.wh..wh..opq"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s should not exist in the unpacked layer: %v", p, err)
		}
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(dir, "var"), opaqueXattr, buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Errorf("var %s = %q, %v; want \"y\"", opaqueXattr, buf[:n], err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "var/keep")); err != nil || string(b) != "kept" {
		t.Errorf("var/keep = %q, %v", b, err)
	}
}

func TestUnpackRejectsEscapes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []tarEntry
	}{
		{"dot-dot", []tarEntry{{name: "../evil", body: "x"}}},
		{"nested dot-dot", []tarEntry{{name: "a/../../evil", body: "x"}}},
		{"through absolute symlink", []tarEntry{
			{name: "link", typ: tar.TypeSymlink, link: "/"},
			{name: "link/evil", body: "x"},
		}},
		{"through relative symlink", []tarEntry{
			{name: "link", typ: tar.TypeSymlink, link: "../.."},
			{name: "link/evil", body: "x"},
		}},
		{"hard link out", []tarEntry{{name: "h", typ: tar.TypeLink, link: "../../etc/passwd"}}},
		{"hard link through symlink", []tarEntry{
			{name: "link", typ: tar.TypeSymlink, link: "/etc"},
			{name: "h", typ: tar.TypeLink, link: "link/passwd"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := unpackForTest(t, tc.entries)
			if err == nil {
				t.Fatal("unpack succeeded, want an error")
			}
			t.Logf("error: %v", err)
			parent := filepath.Dir(dir)
			for _, p := range []string{filepath.Join(parent, "evil"), "/evil", filepath.Join(dir, "h")} {
				if _, serr := os.Lstat(p); serr == nil {
					t.Errorf("%s was created (err was %v)", p, err)
				}
			}
		})
	}
}

func TestUnpackKeepsModesOwnersAndLinks(t *testing.T) {
	dir, err := unpackForTest(t, []tarEntry{
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/tool", body: "#!/bin/sh\n", mode: 0o4755, uid: 1234, gid: 5678},
		{name: "bin/alias", typ: tar.TypeLink, link: "bin/tool"},
		{name: "bin/sym", typ: tar.TypeSymlink, link: "/bin/tool"},
		{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		{name: "secret", body: "s", mode: 0o600},
	})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(dir, "bin/tool"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode(), os.FileMode(0o755)|os.ModeSetuid; got != want {
		t.Errorf("bin/tool mode = %v, want %v", got, want)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if os.Geteuid() == 0 && (st.Uid != 1234 || st.Gid != 5678) {
		t.Errorf("bin/tool owner = %d:%d, want 1234:5678", st.Uid, st.Gid)
	}
	if st.Nlink != 2 {
		t.Errorf("bin/tool nlink = %d, want 2 (hard link)", st.Nlink)
	}
	ai, err := os.Lstat(filepath.Join(dir, "bin/alias"))
	if err != nil || !os.SameFile(fi, ai) {
		t.Errorf("bin/alias is not a hard link of bin/tool: %v", err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "bin/sym")); err != nil || l != "/bin/tool" {
		t.Errorf("bin/sym -> %q, %v", l, err)
	}
	if ti, err := os.Stat(filepath.Join(dir, "tmp")); err != nil || ti.Mode() != os.ModeDir|os.ModeSticky|0o777 {
		t.Errorf("tmp mode = %v, %v", ti.Mode(), err)
	}
	if si, err := os.Stat(filepath.Join(dir, "secret")); err != nil || si.Mode() != 0o600 {
		t.Errorf("secret mode = %v, %v", si.Mode(), err)
	}
	if !fi.ModTime().Equal(time.Unix(1700000000, 0)) {
		t.Errorf("bin/tool mtime = %v", fi.ModTime())
	}
}

func TestUnpackSizeLimit(t *testing.T) {
	dir := t.TempDir()
	tr := buildTar(t, []tarEntry{{name: "big", body: string(make([]byte, 2048))}})
	err := unpackLayer(bytes.NewReader(tr), dir, unpackOptions{maxBytes: 1024, maxEntries: 10})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("unpacking a layer over the size limit: %v; want ErrTooLarge", err)
	}
}

// TestUnpackCaps: a layer over the entry cap is refused, whatever its entries (empty
// files, directories, links), and so is an image whose layers together pass its caps.
func TestUnpackCaps(t *testing.T) {
	many := func(n int) []byte {
		var entries []tarEntry
		for i := 0; i < n; i++ {
			entries = append(entries, tarEntry{name: fmt.Sprintf("f%d", i)})
		}
		return buildTar(t, entries)
	}
	for _, tc := range []struct {
		name    string
		tar     []byte
		opts    unpackOptions
		refused bool
	}{
		{"at the entry cap", many(10), unpackOptions{maxBytes: 1 << 20, maxEntries: 10}, false},
		{"over the entry cap", many(11), unpackOptions{maxBytes: 1 << 20, maxEntries: 10}, true},
		{"over the image's entries", many(5), unpackOptions{maxBytes: 1 << 20, maxEntries: 10, image: &imageBudget{bytes: 1 << 20, entries: 4}}, true},
		{"over the image's bytes", buildTar(t, []tarEntry{{name: "a", body: "0123456789"}}),
			unpackOptions{maxBytes: 1 << 20, maxEntries: 10, image: &imageBudget{bytes: 9, entries: 10}}, true},
		{"no room on the disk", buildTar(t, []tarEntry{{name: "a", body: "x"}}),
			unpackOptions{maxBytes: 1 << 20, maxEntries: 10, checkSpace: func() error { return ErrNoSpace }}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := unpackLayer(bytes.NewReader(tc.tar), t.TempDir(), tc.opts)
			if tc.refused && err == nil {
				t.Fatal("unpacked; want it refused")
			}
			if !tc.refused && err != nil {
				t.Fatal(err)
			}
			if tc.refused && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrNoSpace) {
				t.Errorf("error %v; want ErrTooLarge or ErrNoSpace", err)
			}
		})
	}
}
