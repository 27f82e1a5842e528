// Package datadir owns the server's data directory: it creates it, proves it writable, takes
// an exclusive lock so two servers never share it, and tells a Gantry data directory from a
// foreign or damaged one before anything inside is touched.
package datadir

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/gantry-run/gantry/internal/atomicfile"
)

// MarkerFile is the file that identifies a Gantry data directory.
const MarkerFile = "gantry-data.json"

// The data directory's layout: each part's place in it, named once. Paths are relative to
// the data directory; join them with Dir.Join or filepath.Join.
const (
	EtcdDir          = "etcd"            // etcd's member data
	PKIDir           = "pki"             // the cluster CA, serving and client certificates
	AdminKubeconfig  = "kubeconfig.yaml" // the admin kubeconfig gantry kubectl reads
	KubeconfigsDir   = "kubeconfigs"     // kubeconfigs of the in-process components
	LogsDir          = "logs"            // the Kubernetes components' log
	RegistryDir      = "registry"        // the embedded registry's blobs and manifests
	ImagesDir        = "images"          // the node's unpacked image store
	SandboxesDir     = "sandboxes"       // the node's runc sandboxes
	NodeDir          = "node"            // the node's per-pod state
	OverlayDir       = "overlay"         // the overlay's net-conf and kubeconfig (flannel's)
	SharedVolumesDir = "shared-volumes"  // the shared storage's volumes, one directory per PersistentVolume
	APIServerDir     = "apiserver"       // the API server's policy: authentication and admission configuration
	SnapshotsDir     = "snapshots"       // etcd snapshots (gantry etcd-snapshot, gantry server --etcd-snapshot-interval)
	JoinToken        = "token"           // the agents' join token (internal/join)
	ServerToken      = "server-token"    // the servers' join token, of a server of several (internal/join)
	BinDir           = "bin"             // the queue-proxy binary gantry carries, bound into pods (internal/qpbin)
)

// markerKind is the value of Marker.Kind in every Gantry data directory.
const markerKind = "GantryDataDir"

// FormatVersion is the layout version this build reads and writes.
const FormatVersion = 1

// Marker is the content of MarkerFile.
type Marker struct {
	Kind      string `json:"kind"`
	Format    int    `json:"format"`
	ClusterID string `json:"clusterID"`
}

// Dir is an opened, locked data directory.
type Dir struct {
	Path   string
	Marker Marker
	// Fresh is true when this open created the directory's marker: a first start.
	Fresh bool
	lock  *os.File
}

// Open prepares path for use: it creates the directory if needed, checks it can be written,
// locks it, and reads or writes its marker. It never removes or rewrites anything that is
// already there; every failure names the directory and the problem.
func Open(path string) (*Dir, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: %w", path, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %s cannot be created: %w", abs, unwrapPathError(err))
	}
	if err := checkWritable(abs); err != nil {
		return nil, err
	}
	// Tell a foreign or damaged directory before creating anything in it, even the lock.
	marker, found, err := readMarker(abs)
	if err != nil {
		return nil, err
	}
	lock, err := lockDir(abs)
	if err != nil {
		return nil, err
	}
	d := &Dir{Path: abs, Marker: marker, lock: lock}
	if !found {
		if d.Marker, err = writeMarker(abs); err != nil {
			d.Close()
			return nil, err
		}
		d.Fresh = true
	}
	return d, nil
}

// Join returns a path inside the data directory.
func (d *Dir) Join(elem ...string) string {
	return filepath.Join(append([]string{d.Path}, elem...)...)
}

// Close releases the lock.
func (d *Dir) Close() {
	if d.lock != nil {
		_ = d.lock.Close()
		d.lock = nil
	}
}

func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", dir, unwrapPathError(err))
	}
	name := f.Name()
	_ = f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", dir, unwrapPathError(err))
	}
	return nil
}

const lockFile = ".lock"

func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir %s cannot be locked: %w", dir, unwrapPathError(err))
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := "another process"
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = fmt.Sprintf("another gantry server (pid %d)", pid)
			}
		}
		_ = f.Close()
		return nil, fmt.Errorf("data dir %s is in use by %s", dir, holder)
	}
	// Record the holder for the message above; the lock, not this content, is what counts.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// readMarker reads the marker of a Gantry data directory. An empty directory has none
// (found is false); a directory with other content and no marker is foreign and refused.
func readMarker(dir string) (m Marker, found bool, err error) {
	data, err := os.ReadFile(filepath.Join(dir, MarkerFile))
	switch {
	case err == nil:
		m, err := parseMarker(data)
		if err != nil {
			return Marker{}, false, fmt.Errorf("data dir %s is damaged: %s: %w", dir, MarkerFile, err)
		}
		return m, true, nil
	case !errors.Is(err, os.ErrNotExist):
		return Marker{}, false, fmt.Errorf("data dir %s: reading %s: %w", dir, MarkerFile, unwrapPathError(err))
	}
	others, err := foreignEntries(dir)
	if err != nil {
		return Marker{}, false, err
	}
	if len(others) > 0 {
		return Marker{}, false, fmt.Errorf("data dir %s is not a gantry data dir (it holds %s and no %s): choose an empty directory or one gantry created",
			dir, describe(others), MarkerFile)
	}
	return Marker{}, false, nil
}

// writeMarker makes dir a Gantry data directory with a new cluster ID.
func writeMarker(dir string) (Marker, error) {
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	m := Marker{Kind: markerKind, Format: FormatVersion, ClusterID: hex.EncodeToString(id)}
	out, _ := json.MarshalIndent(m, "", "  ")
	if err := atomicfile.Write(filepath.Join(dir, MarkerFile), append(out, '\n'), 0o600); err != nil {
		return Marker{}, fmt.Errorf("data dir %s: %w", dir, err)
	}
	return m, nil
}

func parseMarker(data []byte) (Marker, error) {
	var m Marker
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&m); err != nil {
		return Marker{}, fmt.Errorf("not valid JSON: %w", err)
	}
	if m.Kind != markerKind {
		return Marker{}, fmt.Errorf("kind is %q, want %q", m.Kind, markerKind)
	}
	if m.Format < 1 {
		return Marker{}, fmt.Errorf("format %d is not a valid format version", m.Format)
	}
	if m.Format > FormatVersion {
		return Marker{}, fmt.Errorf("format %d was written by a newer gantry (this one reads format %d)", m.Format, FormatVersion)
	}
	if m.ClusterID == "" {
		return Marker{}, errors.New("clusterID is empty")
	}
	return m, nil
}

// foreignEntries lists what is in dir besides the files Open itself creates.
func foreignEntries(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("data dir %s cannot be read: %w", dir, unwrapPathError(err))
	}
	var names []string
	for _, e := range entries {
		if e.Name() == lockFile || e.Name() == "lost+found" {
			continue
		}
		names = append(names, e.Name())
	}
	return names, nil
}

func describe(names []string) string {
	const show = 3
	quoted := make([]string, 0, show)
	for i, n := range names {
		if i == show {
			break
		}
		quoted = append(quoted, strconv.Quote(n))
	}
	s := strings.Join(quoted, ", ")
	if len(names) > show {
		s += fmt.Sprintf(" and %d more", len(names)-show)
	}
	return s
}

// unwrapPathError drops the *PathError wrapper, whose path the callers already name.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
