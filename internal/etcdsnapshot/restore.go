package etcdsnapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	etcdutl "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"

	"github.com/gantry-run/gantry/internal/atomicfile"
)

// revisionBump is added to the restored revision, which is marked compacted: a client that
// watched the server before (an informer outside it) then lists again instead of waiting for
// revisions it has already seen. etcd's documentation suggests the same amount.
const revisionBump = 1_000_000_000

// clusterToken is etcd's default cluster token, the one the server's etcd is created with.
const clusterToken = "etcd-cluster"

// RestoreOptions says what to restore where.
type RestoreOptions struct {
	// Snapshot is the snapshot file; check it with Verify first (Restore checks its SHA-256
	// again, as etcd's restore does).
	Snapshot string
	// EtcdDir is the etcd data directory the restored member replaces; its parent must exist.
	EtcdDir string
	// MemberName and PeerURL are the member the restored data dir is for: a single-member
	// cluster of it, as the server runs etcd.
	MemberName string
	PeerURL    string
	// Now names the directory the old data is kept in.
	Now time.Time
}

// Restore makes a fresh etcd member directory from a snapshot, with etcd's own restore code,
// and puts it in place of EtcdDir. The old EtcdDir, when there is one, is kept beside it
// (renamed, not removed) and its path returned. On failure EtcdDir is as it was.
func Restore(opts RestoreOptions) (aside string, err error) {
	parent := filepath.Dir(opts.EtcdDir)
	staging, err := os.MkdirTemp(parent, "."+filepath.Base(opts.EtcdDir)+".restoring-*")
	if err != nil {
		return "", fmt.Errorf("restoring into %s: %w", parent, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(staging)
		}
	}()
	// etcd writes into a directory it creates; the temporary one only reserved the name.
	if err := os.Remove(staging); err != nil {
		return "", err
	}
	if err := restore(etcdutl.RestoreConfig{
		SnapshotPath:        opts.Snapshot,
		Name:                opts.MemberName,
		OutputDataDir:       staging,
		PeerURLs:            []string{opts.PeerURL},
		InitialCluster:      opts.MemberName + "=" + opts.PeerURL,
		InitialClusterToken: clusterToken,
		RevisionBump:        revisionBump,
		MarkCompacted:       true,
	}); err != nil {
		return "", fmt.Errorf("restoring %s: %w", opts.Snapshot, err)
	}
	// etcd refuses a data directory others can read.
	if err := os.Chmod(staging, 0o700); err != nil {
		return "", err
	}

	switch _, statErr := os.Lstat(opts.EtcdDir); {
	case statErr == nil:
		aside = opts.EtcdDir + ".before-restore-" + opts.Now.UTC().Format(timeLayout)
		if _, err := os.Lstat(aside); err == nil {
			return "", fmt.Errorf("%s exists already: a restore in the same second? try again", aside)
		}
		if err := os.Rename(opts.EtcdDir, aside); err != nil {
			return "", fmt.Errorf("keeping %s aside: %w", opts.EtcdDir, err)
		}
	case !errors.Is(statErr, os.ErrNotExist):
		return "", statErr
	}
	if err := os.Rename(staging, opts.EtcdDir); err != nil {
		if aside != "" {
			if rerr := os.Rename(aside, opts.EtcdDir); rerr != nil {
				return "", fmt.Errorf("putting the restored data in %s: %w (and putting the old one back from %s: %w)", opts.EtcdDir, err, aside, rerr)
			}
		}
		return "", fmt.Errorf("putting the restored data in %s: %w", opts.EtcdDir, err)
	}
	return aside, atomicfile.SyncDir(parent)
}

// restore runs etcd's restore; a panic in etcd's storage code is an error.
func restore(cfg etcdutl.RestoreConfig) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("etcd: %v", r)
		}
	}()
	return etcdutl.NewV3(zap.NewNop()).Restore(cfg)
}
