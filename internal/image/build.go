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

// BuildGoImages builds the Go main packages ./<name> under dir, one per key of refs, in one
// run of the toolchain (which shares work across packages), wraps each as BuildGoImage does
// and pushes it to refs[name]. It returns each pushed image's manifest digest by name.
func BuildGoImages(ctx context.Context, dir string, refs map[string]string) (map[string]v1.Hash, error) {
	ctx, cancel := withDefaultTimeout(ctx, BuildTimeout)
	defer cancel()
	tmp, err := os.MkdirTemp("", "gantry-build-")
	if err != nil {
		return nil, fmt.Errorf("building images under %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	names := make([]string, 0, len(refs))
	for n := range refs {
		names = append(names, n)
	}
	sort.Strings(names)
	pkgs := make([]string, len(names))
	for i, n := range names {
		pkgs[i] = "./" + n
	}
	if err := goBuild(ctx, dir, tmp+string(filepath.Separator), pkgs...); err != nil {
		return nil, fmt.Errorf("building images under %s: %w", dir, err)
	}
	out := make(map[string]v1.Hash, len(names))
	for _, n := range names {
		h, err := pushBinary(ctx, filepath.Join(tmp, n), refs[n])
		if err != nil {
			return nil, fmt.Errorf("pushing image %s: %w", n, err)
		}
		out[n] = h
	}
	return out, nil
}

func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
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
	return PushBinary(ctx, bin, ref, "")
}

// PushBinary wraps the static linux binary bin into a single-layer image as BuildGoImage
// does (the binary at /app, Entrypoint ["/app"]), running as user (a uid, or uid:gid; empty
// means root), and pushes it to ref. It returns the pushed image's manifest digest.
func PushBinary(ctx context.Context, bin, ref, user string) (v1.Hash, error) {
	img, err := binaryImage(bin, user)
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
func binaryImage(bin, user string) (v1.Image, error) {
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
	cf.Config.User = user
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
