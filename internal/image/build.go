package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Limits on building images from source.
const (
	// BuildTimeout bounds one build-and-push when the caller's context has no deadline.
	BuildTimeout = 10 * time.Minute
	// maxBuildOutput bounds how much compiler output an error quotes.
	maxBuildOutput = 8 << 10
)

// DefaultPath is the PATH set in built images.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// modulePath is the Go module that holds the test images.
const modulePath = "github.com/gantry-run/gantry"

// BuildGoImage builds the Go main package in pkgDir as a static linux binary for this
// machine's architecture (CGO_ENABLED=0), wraps it in a single-layer OCI image (the binary
// at /app, an empty /tmp, Entrypoint ["/app"]) and pushes it to ref. It returns the
// pushed image's manifest digest.
func BuildGoImage(ctx context.Context, pkgDir, ref string) (v1.Hash, error) {
	ctx, cancel := withDefaultTimeout(ctx, BuildTimeout)
	defer cancel()
	tmp, err := os.MkdirTemp("", "gantry-build-")
	if err != nil {
		return v1.Hash{}, fmt.Errorf("building %s: %w", pkgDir, err)
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "app")
	if err := goBuild(ctx, pkgDir, bin, "."); err != nil {
		return v1.Hash{}, fmt.Errorf("building %s: %w", pkgDir, err)
	}
	h, err := pushBinary(ctx, bin, ref)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("building %s: %w", pkgDir, err)
	}
	return h, nil
}

// TestImageRef is where PushTestImages puts the test image called name.
func TestImageRef(registryHost, name string) string {
	return registryHost + "/gantry/test/" + name + ":latest"
}

// PushTestImage builds the program test/images/<name> and pushes it to
// TestImageRef(registryHost, name), which it returns. It finds test/images from the working
// directory, like PushTestImages.
func PushTestImage(ctx context.Context, registryHost, name string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	ref := TestImageRef(registryHost, name)
	if _, err := BuildGoImage(ctx, filepath.Join(root, "test", "images", name), ref); err != nil {
		return "", fmt.Errorf("building test image %s: %w", name, err)
	}
	return ref, nil
}

// PushTestImages builds every program under test/images (one directory with a main.go
// each) and pushes it to TestImageRef(registryHost, name). It finds test/images from the
// module root above the working directory, so it works from any package's tests. It
// returns each image's digest reference (repo@sha256:…) by name.
func PushTestImages(ctx context.Context, registryHost string) (map[string]string, error) {
	ctx, cancel := withDefaultTimeout(ctx, BuildTimeout)
	defer cancel()
	root, err := moduleRoot()
	if err != nil {
		return nil, fmt.Errorf("pushing test images: %w", err)
	}
	imagesDir := filepath.Join(root, "test", "images")
	names, err := testImageNames(imagesDir)
	if err != nil {
		return nil, fmt.Errorf("pushing test images: %w", err)
	}
	tmp, err := os.MkdirTemp("", "gantry-build-")
	if err != nil {
		return nil, fmt.Errorf("pushing test images: %w", err)
	}
	defer os.RemoveAll(tmp)

	// One go build for all of them: the toolchain shares work across packages.
	pkgs := make([]string, len(names))
	for i, n := range names {
		pkgs[i] = "./" + n
	}
	if err := goBuild(ctx, imagesDir, tmp+string(filepath.Separator), pkgs...); err != nil {
		return nil, fmt.Errorf("pushing test images: %w", err)
	}
	out := make(map[string]string, len(names))
	for _, n := range names {
		ref := TestImageRef(registryHost, n)
		h, err := pushBinary(ctx, filepath.Join(tmp, n), ref)
		if err != nil {
			return nil, fmt.Errorf("pushing test image %s: %w", n, err)
		}
		parsed, err := ParseReference(ref)
		if err != nil {
			return nil, err
		}
		out[n] = parsed.Context().Digest(h.String()).String()
	}
	return out, nil
}

func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// testImageNames lists the directories under dir that hold a main.go, sorted.
func testImageNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() || e.Name() == "internal" || e.Name() == "testdata" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "main.go")); err == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("no test images under %s", dir)
	}
	return names, nil
}

// moduleRoot walks up from the working directory to the go.mod of Gantry's module.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module "+modulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod for module %s above the working directory", modulePath)
		}
		dir = parent
	}
}

// goBuild runs `go build -o out pkgs...` in dir for a static linux binary.
func goBuild(ctx context.Context, dir, out string, pkgs ...string) error {
	args := append([]string{"build", "-trimpath", "-ldflags=-s -w", "-o", out}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(output.String())
		if len(msg) > maxBuildOutput {
			msg = "…" + msg[len(msg)-maxBuildOutput:]
		}
		return fmt.Errorf("go build: %w: %s", err, msg)
	}
	return nil
}

// pushBinary wraps a static binary into an image and pushes it to ref.
func pushBinary(ctx context.Context, bin, ref string) (v1.Hash, error) {
	img, err := binaryImage(bin)
	if err != nil {
		return v1.Hash{}, err
	}
	r, err := ParseReference(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Write(r, img, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return v1.Hash{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	h, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	return h, nil
}

// buildEpoch is the fixed timestamp of built images and their files, so the same binary
// always gives the same digest.
var buildEpoch = time.Unix(0, 0).UTC()

// binaryImage makes the single-layer image for a static binary.
func binaryImage(bin string) (v1.Image, error) {
	layerTar, err := binaryLayerTar(bin)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return os.Open(layerTar)
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("making layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, MediaType: types.OCILayer})
	if err != nil {
		return nil, fmt.Errorf("making image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("making image: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Created = v1.Time{Time: buildEpoch}
	cf.Config.Entrypoint = []string{"/app"}
	cf.Config.Env = []string{DefaultPath}
	cf.Config.WorkingDir = "/"
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("making image: %w", err)
	}
	return img, nil
}

// binaryLayerTar writes the layer's tar next to the binary: /tmp (1777) and /app (0755),
// both owned by root.
func binaryLayerTar(bin string) (path string, err error) {
	src, err := os.Open(bin)
	if err != nil {
		return "", fmt.Errorf("making layer: %w", err)
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return "", fmt.Errorf("making layer: %w", err)
	}
	path = bin + ".layer.tar"
	f, err := os.Create(path)
	if err != nil {
		return "", fmt.Errorf("making layer: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("making layer: %w", cerr)
		}
	}()
	tw := tar.NewWriter(f)
	hdrs := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: buildEpoch, Format: tar.FormatPAX},
		{Typeflag: tar.TypeReg, Name: "app", Mode: 0o755, Size: st.Size(), ModTime: buildEpoch, Format: tar.FormatPAX},
	}
	if err := tw.WriteHeader(hdrs[0]); err != nil {
		return "", fmt.Errorf("making layer: %w", err)
	}
	if err := tw.WriteHeader(hdrs[1]); err != nil {
		return "", fmt.Errorf("making layer: %w", err)
	}
	if n, err := io.Copy(tw, src); err != nil || n != st.Size() {
		return "", fmt.Errorf("making layer: copying %s: %w", bin, errors.Join(err, fmt.Errorf("copied %d of %d bytes", n, st.Size())))
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("making layer: %w", err)
	}
	return path, nil
}
