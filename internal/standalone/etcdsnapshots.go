package standalone

import (
	"errors"
	"fmt"
	"time"

	"github.com/gantry-run/gantry/internal/controlplane"
	"github.com/gantry-run/gantry/internal/controlplane/datadir"
	"github.com/gantry-run/gantry/internal/etcdsnapshot"
)

// minEtcdSnapshotInterval keeps a mistyped --etcd-snapshot-interval (1ms) from snapshotting
// without pause.
const minEtcdSnapshotInterval = time.Second

// validateEtcdSnapshots checks the --etcd-snapshot-* flags.
func (c Config) validateEtcdSnapshots() error {
	switch {
	case c.EtcdSnapshotInterval == 0:
		return nil
	case c.EtcdSnapshotInterval < minEtcdSnapshotInterval:
		return fmt.Errorf("--etcd-snapshot-interval: %s is shorter than %s (0 turns scheduled snapshots off)", c.EtcdSnapshotInterval, minEtcdSnapshotInterval)
	case c.EtcdSnapshotRetention < 1:
		return errors.New("--etcd-snapshot-retention: must be at least 1 (--etcd-snapshot-interval=0 turns scheduled snapshots off)")
	}
	return nil
}

// etcdSnapshotDir is where the scheduled snapshots go.
func etcdSnapshotDir(cfg Config, cp *controlplane.ControlPlane) string {
	if cfg.EtcdSnapshotDir != "" {
		return cfg.EtcdSnapshotDir
	}
	return cp.DataDirJoin(datadir.SnapshotsDir)
}

// addEtcdSnapshots adds the snapshot scheduler after the control plane, whose etcd it saves
// through the client port, as gantry etcd-snapshot save does.
func (s *Server) addEtcdSnapshots(cfg Config) error {
	if cfg.EtcdSnapshotInterval == 0 {
		return nil
	}
	cp := s.ControlPlane
	certs := cp.Certs()
	var err error
	s.EtcdSnapshots, err = etcdsnapshot.NewScheduler(etcdsnapshot.SchedulerOptions{
		Saver: etcdsnapshot.Source{
			Endpoint: controlplane.EtcdClientURL(cfg.ControlPlane.EtcdClientPort),
			CACert:   certs.EtcdCACert(),
			Cert:     certs.EtcdClientCert(),
			Key:      certs.EtcdClientKey(),
		},
		Dir:       etcdSnapshotDir(cfg, cp),
		Interval:  cfg.EtcdSnapshotInterval,
		Retention: cfg.EtcdSnapshotRetention,
		Logger:    cfg.Logger,
	})
	if err != nil {
		return err
	}
	s.group.Add("etcd snapshots", s.EtcdSnapshots)
	return nil
}
