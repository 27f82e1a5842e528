package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/gantry-run/gantry/internal/atomicfile"
)

// DefaultRegistryAddr is where `gantry server` serves the embedded registry.
const DefaultRegistryAddr = "127.0.0.1:5000"

// Defaults for RegistryOptions.
const (
	DefaultMaxBlobBytes     = 2 << 30 // one request body: a blob upload or chunk
	DefaultMaxManifestBytes = 4 << 20
)

// ErrNotLoopback is returned for a registry address that is not on loopback: the embedded
// registry speaks plain HTTP and has no authentication, so it never leaves the machine.
var ErrNotLoopback = errors.New("not a loopback address")

// RegistryOptions configures the embedded registry.
type RegistryOptions struct {
	// Addr is the listen address, host:port on loopback. Empty means DefaultRegistryAddr;
	// port 0 picks a free port (see Registry.Addr).
	Addr string
	// Dir holds blobs and manifests; it survives restarts.
	Dir string
	// MaxBlobBytes bounds one request body (a blob upload or one chunk of it).
	MaxBlobBytes int64
	// MaxManifestBytes bounds one manifest.
	MaxManifestBytes int64
	// Logger receives request logs at debug level; nil means slog.Default().
	Logger *slog.Logger
}

// Registry is the embedded OCI registry: go-containerregistry's registry handler with blobs
// in its on-disk blob store and manifests persisted by Gantry. The upstream handler keeps
// manifests and tags in memory only, so Registry writes every accepted manifest PUT and
// DELETE through to disk and replays them into a fresh handler at Start: a restart keeps
// tags and manifests.
//
// Uploads in progress live in memory until completed (an upstream property); each request
// body is bounded by MaxBlobBytes.
type Registry struct {
	opts RegistryOptions
	log  *slog.Logger

	inner http.Handler
	// mu serialises manifest mutations so disk and memory see them in the same order.
	mu sync.Mutex

	lnMu  sync.Mutex
	ln    net.Listener
	ready chan struct{}
}

// NewRegistry validates opts and returns a registry that is not yet serving.
func NewRegistry(opts RegistryOptions) (*Registry, error) {
	if opts.Addr == "" {
		opts.Addr = DefaultRegistryAddr
	}
	if err := CheckLoopback(opts.Addr); err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		return nil, errors.New("registry: a storage directory is required")
	}
	if opts.MaxBlobBytes <= 0 {
		opts.MaxBlobBytes = DefaultMaxBlobBytes
	}
	if opts.MaxManifestBytes <= 0 {
		opts.MaxManifestBytes = DefaultMaxManifestBytes
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Registry{opts: opts, log: log.With("component", "registry"), ready: make(chan struct{})}, nil
}

// CheckLoopback returns an error naming addr unless its host is a loopback IP or localhost.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("registry address %q: %w", addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	if host == "" {
		host = "all interfaces"
	}
	return fmt.Errorf("registry address %q: %s is %w; the embedded registry serves plain HTTP without authentication and listens on loopback only (127.0.0.1, ::1 or localhost)", addr, host, ErrNotLoopback)
}

func (r *Registry) blobDir() string     { return filepath.Join(r.opts.Dir, "blobs") }
func (r *Registry) manifestDir() string { return filepath.Join(r.opts.Dir, "manifests") }

// registryDrainTimeout bounds how long a stopping registry finishes requests in flight.
const registryDrainTimeout = 10 * time.Second

// Start loads the persisted manifests, listens, and serves until ctx ends; then it stops
// taking connections and finishes the requests in flight. Ready is closed once it accepts
// connections.
func (r *Registry) Start(ctx context.Context) error {
	srv, ln, err := r.listen(ctx)
	if err != nil {
		return err
	}
	close(r.ready)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("registry: %w", err)
	case <-ctx.Done():
	}
	drain, cancel := context.WithTimeout(context.WithoutCancel(ctx), registryDrainTimeout)
	defer cancel()
	if err := srv.Shutdown(drain); err != nil {
		_ = srv.Close()
		return fmt.Errorf("stopping registry: %w", err)
	}
	return nil
}

// Ready is closed once the registry accepts connections.
func (r *Registry) Ready() <-chan struct{} { return r.ready }

func (r *Registry) listen(ctx context.Context) (*http.Server, net.Listener, error) {
	r.lnMu.Lock()
	defer r.lnMu.Unlock()
	if r.ln != nil {
		return nil, nil, errors.New("registry: already started")
	}
	for _, d := range []string{r.blobDir(), r.manifestDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, nil, fmt.Errorf("starting registry: %w", err)
		}
	}
	r.inner = registry.New(
		registry.WithBlobHandler(registry.NewDiskBlobHandler(r.blobDir())),
		registry.Logger(slog.NewLogLogger(r.log.Handler(), slog.LevelDebug)),
	)
	n, err := r.replay(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("starting registry: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", r.opts.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("starting registry on %s: %w", r.opts.Addr, err)
	}
	r.ln = ln
	srv := &http.Server{
		Handler:           http.HandlerFunc(r.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       15 * time.Minute,
		WriteTimeout:      15 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
	}
	r.log.Info("registry serving", "addr", ln.Addr().String(), "dir", r.opts.Dir, "manifests", n)
	return srv, ln, nil
}

// Addr returns the address the registry listens on (host:port), or "" before Start.
func (r *Registry) Addr() string {
	r.lnMu.Lock()
	defer r.lnMu.Unlock()
	if r.ln == nil {
		return ""
	}
	return r.ln.Addr().String()
}

// manifestPath splits /v2/<repo>/manifests/<target>; ok is false for other paths.
func manifestPath(p string) (repo, target string, ok bool) {
	elem := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(elem) < 4 || elem[0] != "v2" || elem[len(elem)-2] != "manifests" {
		return "", "", false
	}
	return strings.Join(elem[1:len(elem)-2], "/"), elem[len(elem)-1], true
}

// validRef checks repo and target so they are safe as paths on disk.
func validRef(repo, target string) error {
	if len(repo) > 255 {
		return fmt.Errorf("invalid repository name %q: longer than 255 characters", repo)
	}
	for _, c := range strings.Split(repo, "/") {
		if !repoComponent.MatchString(c) {
			return fmt.Errorf("invalid repository name %q", repo)
		}
	}
	if strings.HasPrefix(target, "sha256:") {
		if _, err := v1.NewHash(target); err != nil {
			return fmt.Errorf("invalid digest %q", target)
		}
		return nil
	}
	if !tagPattern.MatchString(target) {
		return fmt.Errorf("invalid tag %q", target)
	}
	return nil
}

// repoComponent is one path component of a repository name, as the distribution spec
// defines it. It never starts with "_" or ".", so it is safe as a directory name.
var repoComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$`)

// tagPattern is a valid tag, as the distribution spec defines it.
var tagPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

func writeRegError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]string{{"code": code, "message": msg}},
	})
}

func (r *Registry) serveHTTP(w http.ResponseWriter, req *http.Request) {
	repo, target, isManifest := manifestPath(req.URL.Path)
	if !isManifest || (req.Method != http.MethodPut && req.Method != http.MethodDelete) {
		if req.Body != nil {
			req.Body = http.MaxBytesReader(w, req.Body, r.opts.MaxBlobBytes)
		}
		r.inner.ServeHTTP(w, req)
		return
	}
	if err := validRef(repo, target); err != nil {
		writeRegError(w, http.StatusBadRequest, "NAME_INVALID", err.Error())
		return
	}
	var body []byte
	if req.Method == http.MethodPut {
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, req.Body, r.opts.MaxManifestBytes))
		if err != nil {
			writeRegError(w, http.StatusRequestEntityTooLarge, "MANIFEST_INVALID",
				fmt.Sprintf("reading manifest (limit %d bytes): %v", r.opts.MaxManifestBytes, err))
			return
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	rec := httptest.NewRecorder()
	inReq := req.Clone(req.Context())
	inReq.Body = io.NopCloser(bytes.NewReader(body))
	inReq.ContentLength = int64(len(body))
	r.inner.ServeHTTP(rec, inReq)

	var perr error
	switch {
	case req.Method == http.MethodPut && rec.Code == http.StatusCreated:
		m := storedManifest{ContentType: req.Header.Get("Content-Type"), Manifest: body}
		digest := rec.Header().Get("Docker-Content-Digest")
		perr = r.persist(repo, target, m)
		if perr == nil && digest != "" && digest != target {
			perr = r.persist(repo, digest, m)
		}
	case req.Method == http.MethodDelete && rec.Code == http.StatusAccepted:
		perr = os.Remove(r.targetFile(repo, target))
		if errors.Is(perr, fs.ErrNotExist) {
			perr = nil
		}
	}
	if perr != nil {
		r.log.Error("persisting manifest", "repo", repo, "target", target, "err", perr)
		writeRegError(w, http.StatusInternalServerError, "UNKNOWN", "persisting manifest: "+perr.Error())
		return
	}
	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// storedManifest is one repo/target entry on disk.
type storedManifest struct {
	ContentType string `json:"contentType"`
	Manifest    []byte `json:"manifest"`
}

// targetFile is manifests/<repo>/_manifests/<target>.json; repository components cannot
// start with "_", so entries never collide with nested repositories.
func (r *Registry) targetFile(repo, target string) string {
	return filepath.Join(r.manifestDir(), filepath.FromSlash(repo), "_manifests", target+".json")
}

func (r *Registry) persist(repo, target string, m storedManifest) error {
	p := r.targetFile(repo, target)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return atomicfile.Write(p, b, 0o600)
}

type replayEntry struct {
	repo, target string
	m            storedManifest
}

// replay loads every persisted manifest into the fresh inner handler. Image manifests go
// first; an index is accepted only once the manifests it lists exist, so indexes are
// retried until no more make progress.
func (r *Registry) replay(ctx context.Context) (int, error) {
	var pending []replayEntry
	err := filepath.WalkDir(r.manifestDir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".json") || filepath.Base(filepath.Dir(p)) != "_manifests" {
			return nil
		}
		rel, err := filepath.Rel(r.manifestDir(), filepath.Dir(filepath.Dir(p)))
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var m storedManifest
		if err := json.Unmarshal(b, &m); err != nil {
			r.log.Error("skipping unreadable stored manifest", "path", p, "err", err)
			return nil
		}
		pending = append(pending, replayEntry{
			repo:   filepath.ToSlash(rel),
			target: strings.TrimSuffix(filepath.Base(p), ".json"),
			m:      m,
		})
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("loading manifests: %w", err)
	}
	loaded := 0
	for len(pending) > 0 {
		var retry []replayEntry
		for _, e := range pending {
			if types.MediaType(e.m.ContentType).IsIndex() && !r.indexReady(e) {
				retry = append(retry, e)
				continue
			}
			req := httptest.NewRequestWithContext(ctx, http.MethodPut, "/v2/"+e.repo+"/manifests/"+e.target, bytes.NewReader(e.m.Manifest))
			req.Header.Set("Content-Type", e.m.ContentType)
			rec := httptest.NewRecorder()
			r.inner.ServeHTTP(rec, req)
			if rec.Code != http.StatusCreated {
				// One bad entry must not keep the registry down: report it and go on.
				r.log.Error("skipping stored manifest", "repo", e.repo, "target", e.target,
					"status", rec.Code, "body", strings.TrimSpace(rec.Body.String()))
				continue
			}
			loaded++
		}
		if len(retry) == len(pending) {
			for _, e := range retry {
				r.log.Error("skipping stored index: it lists manifests that are missing", "repo", e.repo, "target", e.target)
			}
			break
		}
		pending = retry
	}
	return loaded, nil
}

// indexReady reports whether every image or index an index lists is already loaded.
func (r *Registry) indexReady(e replayEntry) bool {
	im, err := v1.ParseIndexManifest(bytes.NewReader(e.m.Manifest))
	if err != nil {
		return true // let the handler reject it with its own message
	}
	for _, d := range im.Manifests {
		if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
			continue
		}
		req := httptest.NewRequest(http.MethodHead, "/v2/"+e.repo+"/manifests/"+d.Digest.String(), nil)
		rec := httptest.NewRecorder()
		r.inner.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			return false
		}
	}
	return true
}
