package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-run/gantry/internal/controlplane"
	"github.com/gantry-run/gantry/internal/controlplane/datadir"
	"github.com/gantry-run/gantry/internal/controlplane/pki"
	"github.com/gantry-run/gantry/internal/etcdsnapshot"
)

// snapshotSaveTimeout bounds gantry etcd-snapshot save.
const snapshotSaveTimeout = 10 * time.Minute

// snapshotOptions are the flags every etcd-snapshot command shares.
type snapshotOptions struct {
	dataDir     string
	snapshotDir string
}

// dir is the snapshot directory: --etcd-snapshot-dir, else <data-dir>/snapshots.
func (o *snapshotOptions) dir() string {
	if o.snapshotDir != "" {
		return o.snapshotDir
	}
	return filepath.Join(o.dataDir, datadir.SnapshotsDir)
}

func newEtcdSnapshotCommand() *cobra.Command {
	o := &snapshotOptions{dataDir: dataDirFromEnv(controlplane.DefaultDataDir)}
	cmd := &cobra.Command{
		Use: "etcd-snapshot",
		Example: `  gantry etcd-snapshot save                    # a snapshot of the running server's etcd
  gantry etcd-snapshot ls                      # the snapshots, newest first
  gantry etcd-snapshot prune --retention 3     # keep the newest 3 on-demand snapshots
  gantry etcd-snapshot restore /var/lib/gantry/snapshots/on-demand-20260729T101500Z.db  # server stopped`,
		Short: "Save, list, delete and restore snapshots of the server's etcd",
		Long: `Snapshots of the embedded etcd hold every object of the cluster: a point in
time of its whole database, taken while the server runs, checked (etcd's SHA-256
and the database's pages) before it gets its name, and kept in
<data-dir>/snapshots (or --etcd-snapshot-dir) as <name>-<UTC time>.db.
gantry server also takes them on a schedule (--etcd-snapshot-interval).

A snapshot holds the API's objects only: not the certificates, the images pushed
to the embedded registry, the metering records or shared volumes, which stay in
the data dir.`,
		Args: cobra.NoArgs,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.dataDir, "data-dir", o.dataDir, "the server's data directory (env GANTRY_DATA_DIR)")
	pf.StringVar(&o.snapshotDir, "etcd-snapshot-dir", "", "directory of the snapshots (default <data-dir>/snapshots)")
	cmd.AddCommand(newSnapshotSaveCommand(o), newSnapshotListCommand(o), newSnapshotDeleteCommand(o),
		newSnapshotPruneCommand(o), newSnapshotRestoreCommand(o))
	return cmd
}

func newSnapshotSaveCommand(o *snapshotOptions) *cobra.Command {
	name := etcdsnapshot.OnDemand
	port := controlplane.DefaultEtcdClientPort
	cmd := &cobra.Command{
		Use:   "save",
		Short: "Take a snapshot of the running server's etcd",
		Example: `  gantry etcd-snapshot save
  gantry etcd-snapshot save --name before-upgrade
  gantry etcd-snapshot save --data-dir /tmp/g2 --etcd-client-port 3379`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := etcdsnapshot.ValidateName(name); err != nil {
				return fmt.Errorf("--name: %w", err)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), snapshotSaveTimeout)
			defer cancel()
			return saveSnapshot(ctx, o, name, port, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&name, "name", name, "name of the snapshot: its file is <name>-<UTC time>.db")
	cmd.Flags().IntVar(&port, "etcd-client-port", port, "the running server's --etcd-client-port")
	return cmd
}

func saveSnapshot(ctx context.Context, o *snapshotOptions, name string, port int, w io.Writer) error {
	if err := requireDataDir(o.dataDir); err != nil {
		return err
	}
	certs := pki.Bundle{Dir: filepath.Join(o.dataDir, datadir.PKIDir)}
	src := etcdsnapshot.Source{
		Endpoint: controlplane.EtcdClientURL(port),
		CACert:   certs.EtcdCACert(),
		// The API server's client certificate: etcd admits any certificate of its CA.
		Cert: certs.EtcdClientCert(),
		Key:  certs.EtcdClientKey(),
	}
	sn, st, err := src.Save(ctx, o.dir(), name, time.Now())
	if errors.Is(err, etcdsnapshot.ErrUnreachable) {
		return fmt.Errorf("%w: is gantry server running with --data-dir %s and --etcd-client-port %d?", err, o.dataDir, port)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "saved %s (%s, revision %d, %d keys)\n", sn.Path, humanSize(sn.Size), st.Revision, st.Keys)
	return nil
}

// requireDataDir refuses a directory that is not a gantry data dir, naming the flag.
func requireDataDir(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, datadir.MarkerFile)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("--data-dir %s is not a gantry data dir (it has no %s)", dir, datadir.MarkerFile)
		}
		return fmt.Errorf("--data-dir %s: %w", dir, err)
	}
	return nil
}

func newSnapshotListCommand(o *snapshotOptions) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the snapshots, newest first",
		Example: `  gantry etcd-snapshot ls
  gantry etcd-snapshot ls -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" {
				return fmt.Errorf("-o %s: want json", output)
			}
			all, err := etcdsnapshot.List(o.dir())
			if err != nil {
				return err
			}
			return printSnapshots(cmd.OutOrStdout(), all, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "print json instead of the table")
	return cmd
}

// printSnapshots writes the table of gantry etcd-snapshot ls, or its JSON.
func printSnapshots(w io.Writer, all []etcdsnapshot.Snapshot, output string) error {
	if output == "json" {
		if all == nil {
			all = []etcdsnapshot.Snapshot{}
		}
		out, err := json.MarshalIndent(all, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", out)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tCREATED")
	for _, s := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.File, humanSize(s.Size), s.Time.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

// humanSize is a size in the binary units of Kubernetes quantities, rounded to a tenth.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"Ki", "Mi", "Gi", "Ti"}
	v, i := float64(n)/unit, 0
	for v >= unit && i < len(units)-1 {
		v /= unit
		i++
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0") + " " + units[i]
}

func newSnapshotDeleteCommand(o *snapshotOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME...",
		Aliases: []string{"rm"},
		Short:   "Delete snapshots by the names gantry etcd-snapshot ls shows",
		Example: `  gantry etcd-snapshot delete on-demand-20260729T101500Z.db`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := etcdsnapshot.Delete(o.dir(), args...); err != nil {
				return err
			}
			for _, a := range args {
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", filepath.Join(o.dir(), a))
			}
			return nil
		},
	}
}

func newSnapshotPruneCommand(o *snapshotOptions) *cobra.Command {
	name := etcdsnapshot.OnDemand
	retention := 0
	cmd := &cobra.Command{
		Use:   "prune --retention N",
		Short: "Delete all but the newest N snapshots of one name",
		Long: `Deletes the snapshots taken under --name (on-demand unless told another) but the
newest --retention of them. Snapshots of other names are not touched: the
server's scheduled ones (--name scheduled) are pruned by the server itself.`,
		Example: `  gantry etcd-snapshot prune --retention 3
  gantry etcd-snapshot prune --name scheduled --retention 2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := etcdsnapshot.ValidateName(name); err != nil {
				return fmt.Errorf("--name: %w", err)
			}
			if retention < 1 {
				return fmt.Errorf("--retention: %d must be at least 1 (delete snapshots by name with gantry etcd-snapshot delete)", retention)
			}
			removed, err := etcdsnapshot.Prune(o.dir(), name, retention)
			for _, s := range removed {
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", s.Path)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&name, "name", name, "the name whose snapshots are pruned")
	cmd.Flags().IntVar(&retention, "retention", retention, "how many of the newest to keep (at least 1)")
	return cmd
}

func newSnapshotRestoreCommand(o *snapshotOptions) *cobra.Command {
	peerPort := controlplane.DefaultEtcdPeerPort
	cmd := &cobra.Command{
		Use:   "restore SNAPSHOT",
		Short: "Restore a snapshot into a stopped server's data dir",
		Long: `Restores SNAPSHOT (a path, or a name as gantry etcd-snapshot ls shows it) into
--data-dir, whose server must be stopped. etcd's own restore code makes a fresh
single-member etcd from it; the data dir's etcd directory is kept beside it as
etcd.before-restore-<time>, not deleted. The next gantry server start serves the
objects of the snapshot and nothing written after it.

The data dir keeps everything else: its certificates, the images in its
registry, its metering records. Restoring into a new, empty data dir works too
(after losing the old one): the server then makes new certificates at its first
start, and images pushed to the old server's registry must be pushed again.

Give the same --etcd-peer-port as the server runs with.`,
		Example: `  gantry etcd-snapshot restore on-demand-20260729T101500Z.db
  gantry etcd-snapshot restore /backup/on-demand-20260729T101500Z.db --data-dir /tmp/g2 --etcd-peer-port 3380`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if peerPort < 1 || peerPort > 65535 {
				return fmt.Errorf("--etcd-peer-port: %d is not a port (1-65535)", peerPort)
			}
			return restoreSnapshot(o, args[0], peerPort, cmd.OutOrStdout())
		},
	}
	cmd.Flags().IntVar(&peerPort, "etcd-peer-port", peerPort, "the server's --etcd-peer-port: the restored member's peer URL")
	return cmd
}

func restoreSnapshot(o *snapshotOptions, arg string, peerPort int, w io.Writer) error {
	path := arg
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && filepath.Base(arg) == arg {
		if _, _, ok := etcdsnapshot.ParseFileName(arg); ok {
			path = filepath.Join(o.dir(), arg)
		}
	}
	// The snapshot is checked before the data dir is touched.
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("snapshot %s: %w", arg, unwrapPath(err))
	}
	st, err := etcdsnapshot.Verify(path)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", arg, err)
	}
	// Holding the data dir's lock proves no server runs on it.
	dir, err := datadir.Open(o.dataDir)
	if err != nil {
		return err
	}
	defer dir.Close()
	aside, err := etcdsnapshot.Restore(etcdsnapshot.RestoreOptions{
		Snapshot:   path,
		EtcdDir:    dir.Join(datadir.EtcdDir),
		MemberName: controlplane.EtcdMemberName,
		PeerURL:    controlplane.EtcdPeerURL(peerPort),
		Now:        time.Now(),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "restored %s (revision %d, %d keys) into %s\n", path, st.Revision, st.Keys, dir.Join(datadir.EtcdDir))
	if aside != "" {
		fmt.Fprintf(w, "the etcd data it replaced is kept in %s; remove it once the server serves what you expect\n", aside)
	}
	if dir.Fresh {
		fmt.Fprintf(w, "%s is a new data dir: the server makes new certificates at its first start\n", dir.Path)
	}
	fmt.Fprintf(w, "start the server: gantry server --data-dir %s\n", dir.Path)
	return nil
}

// unwrapPath drops the *PathError wrapper, whose path the message already names.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
