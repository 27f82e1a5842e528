package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sys/unix"

	"github.com/gantry-run/gantry/internal/atomicfile"
)

// Defaults for StoreOptions.
const (
	DefaultMaxLayerBytes = 16 << 30
	// DefaultMaxLayerEntries bounds the files, directories and links of one layer: ten
	// times what a large distribution image holds, and few enough that a layer of empty
	// files cannot use up the filesystem's inodes.
	DefaultMaxLayerEntries = 1 << 20
	// DefaultMaxImageBytes and DefaultMaxImageEntries bound the layers of one image
	// together: 20 GiB is what Fargate gives a pod's whole ephemeral storage.
	DefaultMaxImageBytes   = 20 << 30
	DefaultMaxImageEntries = 2 << 20
	DefaultPullTimeout     = 15 * time.Minute
)

// Image is a pulled image, ready to become a pod's root filesystem.
type Image struct {
	// Ref is the reference as asked for (a tag or a digest reference).
	Ref string `json:"-"`
	// DigestRef is the resolved, immutable reference: repo@sha256:…, the digest of what
	// Ref names (an index or a manifest).
	DigestRef string `json:"-"`
	// Digest is that digest (sha256:…).
	Digest string `json:"digest"`
	// DiffIDs are the layers' uncompressed digests, bottom first.
	DiffIDs []string `json:"diffIDs"`
	// Layers are the unpacked layer directories, bottom first: overlayfs lowerdirs are
	// these in reverse order.
	Layers []string `json:"-"`
	// Config is what the image says to run.
	Config Config `json:"config"`
	// Cached says Pull found the image in the store, all its layers unpacked: it
	// downloaded nothing (a tag was still resolved with the registry).
	Cached bool `json:"-"`
}

// Config is the part of an image's configuration a sandbox needs.
type Config struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	User       string   `json:"user,omitempty"`
}

// StoreOptions configures a Store.
type StoreOptions struct {
	// Keychain supplies registry credentials; nil means authn.DefaultKeychain (the docker
	// config, $DOCKER_CONFIG or ~/.docker/config.json).
	Keychain authn.Keychain
	// Platform picks an image from a multi-platform index; default linux/GOARCH.
	Platform *v1.Platform
	// MaxLayerBytes bounds the file content of one unpacked layer, MaxLayerEntries its tar
	// entries; MaxImageBytes and MaxImageEntries bound the layers a pull unpacks together.
	// Zero means the Default.
	MaxLayerBytes, MaxLayerEntries, MaxImageBytes, MaxImageEntries int64
	// MinFreeBytes is the free space the store's filesystem keeps: a pull that would unpack
	// a layer with less free is refused, and an unpack stops when it falls below (checked
	// every 64 MiB). Zero means no reserve.
	MinFreeBytes int64
	// Transport carries the requests to registries; nil means go-containerregistry's
	// default. An agent's is a Mirror: its pods' images of the server's registry come from
	// the servers.
	Transport http.RoundTripper
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Store is the on-disk image cache, rooted at a directory:
//
//	layers/sha256/<diffID>/   one unpacked layer, shared by every image that has it
//	images/sha256/<digest>.json  an image's layers (diffIDs) and config
//	refs/<sha256 of ref>.json   a reference as pulled and the digest it resolved to
//	tmp/                        unpacks in progress and layers being deleted
//
// One process opens a root at a time (NewStore clears tmp/). Layers unpack into tmp/ and
// are renamed into place, so a layer directory, once it exists, is complete; concurrent
// pulls of one layer both unpack and one rename wins.
type Store struct {
	root string
	opts StoreOptions
	log  *slog.Logger

	// gcMu lets pulls run together and GC run alone.
	gcMu sync.RWMutex
	// unpacks counts layers unpacked by this Store (tests read it).
	unpacks atomic.Int64
}

// NewStore opens (creating if needed) a store rooted at root.
func NewStore(root string, opts StoreOptions) (*Store, error) {
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	if opts.Platform == nil {
		opts.Platform = &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	for _, o := range []struct {
		v   *int64
		def int64
	}{
		{&opts.MaxLayerBytes, DefaultMaxLayerBytes}, {&opts.MaxLayerEntries, DefaultMaxLayerEntries},
		{&opts.MaxImageBytes, DefaultMaxImageBytes}, {&opts.MaxImageEntries, DefaultMaxImageEntries},
	} {
		if *o.v <= 0 {
			*o.v = o.def
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Store{root: root, opts: opts, log: log.With("component", "image-store")}
	for _, d := range []string{s.layersDir(), s.imagesDir(), s.refsDir(), s.tmpDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("opening image store: %w", err)
		}
	}
	// Leftovers of unpacks or deletes a crash interrupted.
	if entries, err := os.ReadDir(s.tmpDir()); err == nil {
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(s.tmpDir(), e.Name()))
		}
	}
	return s, nil
}

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

func (s *Store) layersDir() string { return filepath.Join(s.root, "layers", "sha256") }
func (s *Store) imagesDir() string { return filepath.Join(s.root, "images", "sha256") }
func (s *Store) refsDir() string   { return filepath.Join(s.root, "refs") }
func (s *Store) tmpDir() string    { return filepath.Join(s.root, "tmp") }

// LayerDir is where the layer with this diffID (sha256:…) is unpacked.
func (s *Store) LayerDir(diffID string) string {
	return filepath.Join(s.layersDir(), strings.TrimPrefix(diffID, "sha256:"))
}

func (s *Store) imageFile(digest string) string {
	return filepath.Join(s.imagesDir(), strings.TrimPrefix(digest, "sha256:")+".json")
}

func (s *Store) refFile(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return filepath.Join(s.refsDir(), hex.EncodeToString(sum[:])+".json")
}

// refRecord maps a reference as pulled to the digest reference it resolved to.
type refRecord struct {
	Ref       string `json:"ref"`
	DigestRef string `json:"digestRef"`
}

func (s *Store) remoteOptions(ctx context.Context) []remote.Option {
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(s.opts.Keychain),
		remote.WithPlatform(*s.opts.Platform),
	}
	if s.opts.Transport != nil {
		opts = append(opts, remote.WithTransport(s.opts.Transport))
	}
	return opts
}

// Resolve returns the digest reference (repo@sha256:…) that ref names now, asking the
// registry; it downloads no layers. A digest reference resolves to itself.
func (s *Store) Resolve(ctx context.Context, ref string) (string, error) {
	ctx, cancel := withDefaultTimeout(ctx, DefaultPullTimeout)
	defer cancel()
	r, err := ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("resolving image %s: %w", ref, err)
	}
	if d, ok := r.(name.Digest); ok {
		return d.String(), nil
	}
	desc, err := remote.Head(r, s.remoteOptions(ctx)...)
	if err != nil {
		// Some registries do not answer HEAD for manifests; GET gives the real error.
		gd, gerr := remote.Get(r, s.remoteOptions(ctx)...)
		if gerr != nil {
			return "", fmt.Errorf("resolving image %s: %w", ref, gerr)
		}
		return r.Context().Digest(gd.Digest.String()).String(), nil
	}
	return r.Context().Digest(desc.Digest.String()).String(), nil
}

// Pull makes ref available locally: it resolves ref to a digest, fetches the manifest and
// config, and downloads, verifies and unpacks each layer not already in the cache.
func (s *Store) Pull(ctx context.Context, ref string) (*Image, error) {
	ctx, cancel := withDefaultTimeout(ctx, DefaultPullTimeout)
	defer cancel()
	img, err := s.pull(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("pulling image %s: %w", ref, err)
	}
	return img, nil
}

func (s *Store) pull(ctx context.Context, ref string) (*Image, error) {
	s.gcMu.RLock()
	defer s.gcMu.RUnlock()

	r, err := ParseReference(ref)
	if err != nil {
		return nil, err
	}
	// A digest reference whose image is cached needs no registry at all.
	if d, ok := r.(name.Digest); ok {
		if img, err := s.cached(ref, d.String(), d.DigestStr()); err == nil {
			return img, nil
		}
	}
	desc, err := remote.Get(r, s.remoteOptions(ctx)...)
	if err != nil {
		return nil, err
	}
	digestRef := r.Context().Digest(desc.Digest.String()).String()
	if img, err := s.cached(ref, digestRef, desc.Digest.String()); err == nil {
		return img, s.writeRef(ref, digestRef)
	}

	rimg, err := desc.Image() // picks this platform's image from an index
	if err != nil {
		return nil, err
	}
	cf, err := rimg.ConfigFile() // verified against the manifest's config digest
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	layers, err := rimg.Layers()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	if len(layers) != len(cf.RootFS.DiffIDs) {
		return nil, fmt.Errorf("manifest lists %d layers but config lists %d diffIDs", len(layers), len(cf.RootFS.DiffIDs))
	}
	img := &Image{
		Ref:       ref,
		DigestRef: digestRef,
		Digest:    desc.Digest.String(),
		Config: Config{
			Entrypoint: cf.Config.Entrypoint,
			Cmd:        cf.Config.Cmd,
			Env:        cf.Config.Env,
			WorkingDir: cf.Config.WorkingDir,
			User:       cf.Config.User,
		},
	}
	// Layers found unpacked already are not measured again: the bound applies to what
	// this pull unpacks.
	budget := &imageBudget{bytes: s.opts.MaxImageBytes, entries: s.opts.MaxImageEntries}
	for i, l := range layers {
		diffID := cf.RootFS.DiffIDs[i]
		if err := s.ensureLayer(ctx, l, diffID, budget); err != nil {
			return nil, err
		}
		img.DiffIDs = append(img.DiffIDs, diffID.String())
		img.Layers = append(img.Layers, s.LayerDir(diffID.String()))
	}
	b, err := json.Marshal(img)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(s.imageFile(img.Digest), b, 0o600); err != nil {
		return nil, err
	}
	return img, s.writeRef(ref, digestRef)
}

func (s *Store) writeRef(ref, digestRef string) error {
	b, err := json.Marshal(refRecord{Ref: ref, DigestRef: digestRef})
	if err != nil {
		return err
	}
	return atomicfile.Write(s.refFile(ref), b, 0o600)
}

// cached returns the image with this digest if its metadata and all its layers are here.
func (s *Store) cached(ref, digestRef, digest string) (*Image, error) {
	img, err := s.readImage(digest)
	if err != nil {
		return nil, err
	}
	for _, id := range img.DiffIDs {
		if _, err := os.Stat(s.LayerDir(id)); err != nil {
			return nil, err
		}
		img.Layers = append(img.Layers, s.LayerDir(id))
	}
	img.Ref, img.DigestRef, img.Cached = ref, digestRef, true
	return img, nil
}

func (s *Store) readImage(digest string) (*Image, error) {
	b, err := os.ReadFile(s.imageFile(digest))
	if err != nil {
		return nil, err
	}
	var img Image
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, fmt.Errorf("reading image metadata %s: %w", digest, err)
	}
	return &img, nil
}

// ensureLayer unpacks layer into its diffID directory unless it is already there.
func (s *Store) ensureLayer(ctx context.Context, layer v1.Layer, diffID v1.Hash, budget *imageBudget) error {
	if diffID.Algorithm != "sha256" {
		return fmt.Errorf("layer %s: unsupported digest algorithm", diffID)
	}
	dst := s.LayerDir(diffID.String())
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := s.checkSpace(); err != nil {
		return fmt.Errorf("layer %s: %w", diffID, err)
	}
	tmp, err := os.MkdirTemp(s.tmpDir(), "unpack-"+diffID.Hex[:12]+"-")
	if err != nil {
		return err
	}
	keep := false
	defer func() {
		if !keep {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	// Uncompressed reads the blob through a digest check (the manifest's layer digest);
	// hashing the tar stream checks the config's diffID too.
	rc, err := layer.Uncompressed()
	if err != nil {
		return fmt.Errorf("fetching layer %s: %w", diffID, err)
	}
	defer rc.Close()
	h := sha256.New()
	cr := &ctxReader{ctx: ctx, r: io.TeeReader(rc, h)}
	if err := unpackLayer(cr, tmp, unpackOptions{maxBytes: s.opts.MaxLayerBytes, maxEntries: s.opts.MaxLayerEntries,
		image: budget, checkSpace: s.checkSpace, chown: os.Geteuid() == 0}); err != nil {
		return fmt.Errorf("unpacking layer %s: %w", diffID, err)
	}
	// Read what tar left unread (padding, trailing blocks) so the hash covers all of it.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return fmt.Errorf("fetching layer %s: %w", diffID, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != diffID.String() {
		return fmt.Errorf("layer %s: uncompressed content has digest %s", diffID, got)
	}
	if err := os.Rename(tmp, dst); err != nil {
		if _, serr := os.Stat(dst); serr == nil {
			return nil // another pull unpacked it first
		}
		return fmt.Errorf("storing layer %s: %w", diffID, err)
	}
	keep = true
	s.unpacks.Add(1)
	s.log.Debug("unpacked layer", "diffID", diffID.String())
	return nil
}

// ctxReader stops a long copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// GCResult says what GC removed.
type GCResult struct {
	Images []string // digests
	Layers []string // diffIDs
}

// GC removes every image not named by inUse (tags or digest references, resolved through
// the store's records, never the network) and every layer no remaining image uses. Pulls
// wait while it runs. A reference in inUse the store does not know keeps nothing.
func (s *Store) GC(ctx context.Context, inUse []string) (GCResult, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	var res GCResult

	keep := map[string]bool{}
	for _, ref := range inUse {
		if d := s.localDigest(ref); d != "" {
			keep[d] = true
		}
	}
	keepLayers := map[string]bool{}
	entries, err := os.ReadDir(s.imagesDir())
	if err != nil {
		return res, fmt.Errorf("collecting images: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("collecting images: %w", err)
		}
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		digest := "sha256:" + strings.TrimSuffix(e.Name(), ".json")
		if keep[digest] {
			img, err := s.readImage(digest)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, id := range img.DiffIDs {
				keepLayers[id] = true
			}
			continue
		}
		if err := os.Remove(s.imageFile(digest)); err != nil {
			errs = append(errs, err)
			continue
		}
		res.Images = append(res.Images, digest)
	}
	if len(errs) > 0 {
		// An unreadable kept image might hold layers we would delete: stop here.
		return res, fmt.Errorf("collecting images: %w", errors.Join(errs...))
	}

	// Refs that point at removed images.
	if refs, err := os.ReadDir(s.refsDir()); err == nil {
		for _, e := range refs {
			p := filepath.Join(s.refsDir(), e.Name())
			rec, err := readRef(p)
			if err != nil || !keep[digestOf(rec.DigestRef)] {
				_ = os.Remove(p)
			}
		}
	}

	layers, err := os.ReadDir(s.layersDir())
	if err != nil {
		return res, fmt.Errorf("collecting layers: %w", err)
	}
	for _, e := range layers {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("collecting layers: %w", err)
		}
		id := "sha256:" + e.Name()
		if keepLayers[id] {
			continue
		}
		// Rename first so a half-deleted directory never looks like a complete layer.
		doomed, err := os.MkdirTemp(s.tmpDir(), "delete-")
		if err != nil {
			return res, fmt.Errorf("collecting layers: %w", err)
		}
		if err := os.Rename(filepath.Join(s.layersDir(), e.Name()), filepath.Join(doomed, "layer")); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.RemoveAll(doomed); err != nil {
			errs = append(errs, err)
		}
		res.Layers = append(res.Layers, id)
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("collecting layers: %w", errors.Join(errs...))
	}
	if len(res.Images)+len(res.Layers) > 0 {
		s.log.Info("image gc", "images", len(res.Images), "layers", len(res.Layers))
	}
	return res, nil
}

// localDigest maps a reference to an image digest using only the store's records.
func (s *Store) localDigest(ref string) string {
	if r, err := ParseReference(ref); err == nil {
		if d, ok := r.(name.Digest); ok {
			return d.DigestStr()
		}
	}
	if rec, err := readRef(s.refFile(ref)); err == nil {
		return digestOf(rec.DigestRef)
	}
	return ""
}

func readRef(p string) (refRecord, error) {
	var rec refRecord
	b, err := os.ReadFile(p)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, err
	}
	return rec, nil
}

func digestOf(digestRef string) string {
	if i := strings.LastIndex(digestRef, "@"); i >= 0 {
		return digestRef[i+1:]
	}
	return ""
}

// ErrNoSpace marks a pull refused because the store's filesystem is down to its reserve.
var ErrNoSpace = errors.New("no space for images")

// checkSpace refuses to unpack when the store's filesystem has less than MinFreeBytes free.
func (s *Store) checkSpace() error {
	if s.opts.MinFreeBytes <= 0 {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(s.root, &st); err != nil {
		return fmt.Errorf("reading the image store's free space: %w", err)
	}
	if free := int64(st.Bavail) * st.Bsize; free < s.opts.MinFreeBytes {
		return fmt.Errorf("%w: the image store's filesystem has %d MiB free, under its reserve of %d MiB",
			ErrNoSpace, free>>20, s.opts.MinFreeBytes>>20)
	}
	return nil
}
