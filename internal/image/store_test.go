package image

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
)

func newStore(t *testing.T, root string) *Store {
	t.Helper()
	s, err := NewStore(root, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPullHello is the whole path: build test/images/hello, push it to the embedded
// registry, pull it, pull again from cache, restart the registry and pull again.
func TestPullHello(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	regDir := t.TempDir()
	reg := startRegistry(t, regDir, "")
	addr := reg.Addr()
	ref := addr + "/gantry/test/hello:latest"
	h, err := BuildGoImage(ctx, filepath.Join("..", "..", "test", "images", "hello"), ref)
	if err != nil {
		t.Fatal(err)
	}
	wantDigestRef := addr + "/gantry/test/hello@" + h.String()

	root := t.TempDir()
	s := newStore(t, root)
	img, err := s.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if img.DigestRef != wantDigestRef {
		t.Errorf("DigestRef = %q, want %q", img.DigestRef, wantDigestRef)
	}
	if len(img.Layers) != 1 {
		t.Fatalf("layers = %v, want 1", img.Layers)
	}
	if img.Cached {
		t.Error("the first pull says the image was cached")
	}
	fi, err := os.Stat(filepath.Join(img.Layers[0], "app"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o755 {
		t.Errorf("/app mode = %v, want -rwxr-xr-x", fi.Mode())
	}
	if ti, err := os.Stat(filepath.Join(img.Layers[0], "tmp")); err != nil || !ti.IsDir() {
		t.Errorf("/tmp: %v", err)
	}
	if !slices.Equal(img.Config.Entrypoint, []string{"/app"}) || !slices.Contains(img.Config.Env, DefaultPath) {
		t.Errorf("config = %+v", img.Config)
	}
	if got := s.unpacks.Load(); got != 1 {
		t.Errorf("unpacks after first pull = %d, want 1", got)
	}
	mtime := fi.ModTime()

	// Pulling again, by tag or digest, unpacks nothing.
	for _, r := range []string{ref, wantDigestRef} {
		again, err := s.Pull(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(again.Layers, img.Layers) || again.DigestRef != wantDigestRef || !again.Cached {
			t.Errorf("Pull(%s) = %+v, want the cached image", r, again)
		}
	}
	if got := s.unpacks.Load(); got != 1 {
		t.Errorf("unpacks after second pull = %d, want 1", got)
	}
	if fi, err := os.Stat(filepath.Join(img.Layers[0], "app")); err != nil || !fi.ModTime().Equal(mtime) {
		t.Errorf("layer was rewritten: %v", err)
	}

	if got, err := s.Resolve(ctx, ref); err != nil || got != wantDigestRef {
		t.Errorf("Resolve = %q, %v; want %q", got, err, wantDigestRef)
	}

	// A restarted registry still has the image; a store reopened on the same root reuses
	// its cache; a fresh store can pull it.
	stopRegistry(t, reg)
	startRegistry(t, regDir, addr)
	reopened := newStore(t, root)
	if _, err := reopened.Pull(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if got := reopened.unpacks.Load(); got != 0 {
		t.Errorf("reopened store unpacked %d layers, want 0", got)
	}
	fresh := newStore(t, t.TempDir())
	if img, err := fresh.Pull(ctx, ref); err != nil || img.DigestRef != wantDigestRef || img.Cached {
		t.Fatalf("fresh pull after registry restart = %+v, %v", img, err)
	}

	// A missing tag surfaces the registry's error code, wrapped.
	missing := addr + "/gantry/test/hello:nope"
	_, err = s.Pull(ctx, missing)
	if err == nil || !strings.HasPrefix(err.Error(), "pulling image "+missing+": ") || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
		t.Errorf("Pull(missing tag) error = %v, want it to start with %q and contain MANIFEST_UNKNOWN", err, "pulling image "+missing+": ")
	}
	if _, err := s.Resolve(ctx, missing); err == nil || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
		t.Errorf("Resolve(missing tag) error = %v, want MANIFEST_UNKNOWN", err)
	}
}

// layerOf makes a layer from hand-built tar entries.
func layerOf(t *testing.T, entries []tarEntry) v1.Layer {
	t.Helper()
	b := buildTar(t, entries)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func pushLayers(t *testing.T, ctx context.Context, ref string, layers ...v1.Layer) {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		t.Fatal(err)
	}
}

func TestPullConvertsWhiteouts(t *testing.T) {
	requireRoot(t, "creating overlay whiteouts")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg := startRegistry(t, t.TempDir(), "")
	ref := reg.Addr() + "/wh:latest"
	pushLayers(t, ctx, ref,
		layerOf(t, []tarEntry{{name: "a/", typ: tar.TypeDir}, {name: "a/file", body: "1"}, {name: "b/", typ: tar.TypeDir}, {name: "b/old", body: "2"}}),
		layerOf(t, []tarEntry{{name: "a/.wh.file"}, {name: "b/.wh..wh..opq"}, {name: "b/new", body: "3"}}),
	)
	img, err := newStore(t, t.TempDir()).Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Layers) != 2 {
		t.Fatalf("layers = %d, want 2", len(img.Layers))
	}
	upper := img.Layers[1]
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(upper, "a/file"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("a/file in the upper layer is not a 0:0 whiteout: %v mode %o", err, st.Mode)
	}
	buf := make([]byte, 4)
	if n, err := unix.Lgetxattr(filepath.Join(upper, "b"), opaqueXattr, buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("b is not opaque: %q, %v", buf[:n], err)
	}
	if b, err := os.ReadFile(filepath.Join(img.Layers[0], "a/file")); err != nil || string(b) != "1" {
		t.Errorf("lower a/file = %q, %v", b, err)
	}
}

func TestGC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg := startRegistry(t, t.TempDir(), "")
	shared := layerOf(t, []tarEntry{{name: "shared", body: "s"}})
	refA, refB := reg.Addr()+"/gc/a:latest", reg.Addr()+"/gc/b:latest"
	pushLayers(t, ctx, refA, shared, layerOf(t, []tarEntry{{name: "only-a", body: "a"}}))
	pushLayers(t, ctx, refB, shared, layerOf(t, []tarEntry{{name: "only-b", body: "b"}}))

	s := newStore(t, t.TempDir())
	a, err := s.Pull(ctx, refA)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Pull(ctx, refB)
	if err != nil {
		t.Fatal(err)
	}
	if a.Layers[0] != b.Layers[0] {
		t.Fatalf("shared layer unpacked twice: %s, %s", a.Layers[0], b.Layers[0])
	}
	if got := s.unpacks.Load(); got != 3 {
		t.Errorf("unpacks = %d, want 3 (shared once)", got)
	}

	res, err := s.GC(ctx, []string{refB})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Images, []string{a.Digest}) || !slices.Equal(res.Layers, []string{a.DiffIDs[1]}) {
		t.Errorf("GC removed %+v, want image %s and layer %s", res, a.Digest, a.DiffIDs[1])
	}
	for _, dir := range b.Layers {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("layer of the image in use was removed: %v", err)
		}
	}
	if _, err := os.Stat(a.Layers[1]); !os.IsNotExist(err) {
		t.Errorf("unused layer still there: %v", err)
	}
	// The image in use is still served from cache, by tag record or digest.
	before := s.unpacks.Load()
	if _, err := s.Pull(ctx, b.DigestRef); err != nil {
		t.Fatal(err)
	}
	if s.unpacks.Load() != before {
		t.Error("pull after GC unpacked again")
	}

	// In use by digest reference keeps it too; nothing in use removes everything.
	if res, err := s.GC(ctx, []string{b.DigestRef}); err != nil || len(res.Layers) != 0 {
		t.Errorf("GC(in use by digest) = %+v, %v; want nothing removed", res, err)
	}
	if res, err := s.GC(ctx, nil); err != nil || len(res.Images) != 1 || len(res.Layers) != 2 {
		t.Errorf("GC(nothing in use) = %+v, %v; want 1 image and 2 layers", res, err)
	}
	if entries, _ := os.ReadDir(s.refsDir()); len(entries) != 0 {
		t.Errorf("refs left after full GC: %d", len(entries))
	}
}
