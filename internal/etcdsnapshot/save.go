package etcdsnapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	etcdutl "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/gantry-run/gantry/internal/atomicfile"
)

// dialTimeout bounds reaching etcd's client port; the caller's context bounds the rest.
const dialTimeout = 5 * time.Second

// Source is a running etcd that snapshots are taken from: its client URL and the TLS files
// that let a client in (etcd checks client certificates).
type Source struct {
	Endpoint string // https://127.0.0.1:2379
	CACert   string
	Cert     string
	Key      string
}

// Status is what checking a snapshot file found in it.
type Status struct {
	// Revision is etcd's revision when the snapshot was taken; Keys the keys it holds.
	Revision int64  `json:"revision"`
	Keys     int    `json:"keys"`
	Hash     uint32 `json:"hash"`
	// Version is the storage version of the etcd that wrote it.
	Version string `json:"version,omitempty"`
}

// ErrUnreachable is the error of Save when nothing answers on the etcd client port.
var ErrUnreachable = errors.New("etcd does not answer")

// Save takes a snapshot of the etcd as one consistent point in time, through etcd's
// Snapshot API, into dir as FileName(name, at). The file appears whole or not at all: it is
// written aside, checked (its SHA-256 and its database, as etcdutl snapshot status checks
// them), and only then takes its name.
func (s Source) Save(ctx context.Context, dir, name string, at time.Time) (Snapshot, Status, error) {
	if err := ValidateName(name); err != nil {
		return Snapshot{}, Status{}, err
	}
	u, err := url.Parse(s.Endpoint)
	if err != nil || u.Host == "" {
		return Snapshot{}, Status{}, fmt.Errorf("etcd endpoint %q is not a URL", s.Endpoint)
	}
	// A plain dial first, so a server that is not running gets a plain answer.
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return Snapshot{}, Status{}, fmt.Errorf("%w on %s: %w", ErrUnreachable, u.Host, err)
	}
	_ = conn.Close()

	tlsConfig, err := transport.TLSInfo{CertFile: s.Cert, KeyFile: s.Key, TrustedCAFile: s.CACert}.ClientConfig()
	if err != nil {
		return Snapshot{}, Status{}, fmt.Errorf("etcd client certificate: %w", err)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{s.Endpoint},
		TLS:         tlsConfig,
		DialTimeout: dialTimeout,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return Snapshot{}, Status{}, fmt.Errorf("connecting to etcd at %s: %w", s.Endpoint, err)
	}
	defer func() { _ = cli.Close() }()

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Snapshot{}, Status{}, fmt.Errorf("snapshot dir %s: %w", dir, err)
	}
	file := FileName(name, at)
	path := filepath.Join(dir, file)
	out, err := atomicfile.Create(path, 0o600)
	if err != nil {
		return Snapshot{}, Status{}, err
	}
	defer out.Abort()
	resp, err := cli.SnapshotWithVersion(ctx)
	if err != nil {
		return Snapshot{}, Status{}, fmt.Errorf("snapshot of etcd at %s: %w", s.Endpoint, err)
	}
	defer resp.Snapshot.Close()
	size, err := io.Copy(out, resp.Snapshot)
	if err != nil {
		return Snapshot{}, Status{}, fmt.Errorf("snapshot of etcd at %s: %w", s.Endpoint, err)
	}
	if err := out.Sync(); err != nil {
		return Snapshot{}, Status{}, fmt.Errorf("writing %s: %w", path, err)
	}
	st, err := Verify(out.Name())
	if err != nil {
		return Snapshot{}, Status{}, fmt.Errorf("snapshot of etcd at %s is not whole: %w", s.Endpoint, err)
	}
	if err := out.Commit(); err != nil {
		return Snapshot{}, Status{}, err
	}
	return Snapshot{File: file, Path: path, Name: name, Time: at.UTC().Truncate(time.Second), Size: size}, st, nil
}

// ErrNoChecksum is the error of Verify for a file without the SHA-256 etcd's Snapshot API
// appends: a copy of a member's database file, say, rather than a snapshot.
var ErrNoChecksum = errors.New("has no SHA-256 checksum at its end (not a snapshot saved by gantry etcd-snapshot save or etcdctl snapshot save)")

// Verify checks a snapshot file as etcd's tooling does before it restores one: the SHA-256
// that etcd appended matches the database before it, and the database's pages are whole
// (bbolt's own check). It returns what the snapshot holds.
func Verify(path string) (Status, error) {
	if err := checkSum(path); err != nil {
		return Status{}, err
	}
	st, err := status(path)
	if err != nil {
		return Status{}, fmt.Errorf("%s is not a whole etcd database: %w", path, err)
	}
	return Status{Revision: st.Revision, Keys: st.TotalKey, Hash: st.Hash, Version: st.Version}, nil
}

// checkSum compares the SHA-256 at the end of the file with the bytes before it.
func checkSum(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s is not a file", path)
	}
	// etcd's own test for an appended digest: the database is a whole number of 512-byte
	// sectors, the digest adds 32 bytes.
	size := info.Size()
	if size%512 != sha256.Size {
		return fmt.Errorf("%s %w", path, ErrNoChecksum)
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, size-sha256.Size); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(f, want); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if !bytes.Equal(h.Sum(nil), want) {
		return fmt.Errorf("%s is damaged: its SHA-256 does not match its content", path)
	}
	return nil
}

// status runs etcdutl's check of the database; a panic in the database code on a damaged
// file is an error, not the end of the process.
func status(path string) (st etcdutl.Status, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("damaged database: %v", r)
		}
	}()
	return etcdutl.NewV3(zap.NewNop()).Status(path)
}
