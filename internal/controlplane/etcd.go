package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/bbolt"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gantry-run/gantry/internal/controlplane/datadir"
	"github.com/gantry-run/gantry/internal/controlplane/pki"
)

// EtcdMemberName is the name of the server's single etcd member; a restored snapshot makes a
// member of this name.
const EtcdMemberName = "gantry"

// etcdURL is etcd's URL on one of its ports on loopback, TLS.
func etcdURL(port int) url.URL { return etcdURLOn("127.0.0.1", port) }

// EtcdClientURL is where etcd serves clients, given --etcd-client-port.
func EtcdClientURL(port int) string { u := etcdURL(port); return u.String() }

// EtcdPeerURL is etcd's peer URL, given --etcd-peer-port.
func EtcdPeerURL(port int) string { u := etcdURL(port); return u.String() }

// etcdDataDir is etcd's directory inside the data dir.
func etcdDataDir(dataDir string) string { return filepath.Join(dataDir, datadir.EtcdDir) }

// checkEtcdData opens etcd's backend read-only before etcd does: etcd treats a damaged database
// as fatal and panics, so a damaged file is reported here as an error naming it instead.
func checkEtcdData(dir string) error {
	db := filepath.Join(dir, "member", "snap", "db")
	if _, err := os.Stat(db); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, "member")); err == nil {
			return fmt.Errorf("etcd data in %s is damaged: %s is missing", dir, db)
		}
		return nil
	}
	b, err := bbolt.Open(db, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("etcd data in %s is damaged: %s: %w", dir, db, err)
	}
	defer b.Close()
	return b.View(func(tx *bbolt.Tx) error {
		for _, bucket := range []string{"meta", "key"} {
			if tx.Bucket([]byte(bucket)) == nil {
				return fmt.Errorf("etcd data in %s is damaged: %s has no %q bucket", dir, db, bucket)
			}
		}
		return nil
	})
}

// startEtcd starts this server's etcd member, TLS with client certificates on both its client
// and peer ports, and waits until it serves. A server that is not clustered keeps both ports
// on loopback; a clustered one serves peers and clients at its advertise address too.
func startEtcd(ctx context.Context, cfg Config, certs pki.Bundle, log io.Writer, m etcdMember) (*embed.Etcd, error) {
	dir := etcdDataDir(cfg.DataDir)
	tls := transport.TLSInfo{
		CertFile:       certs.EtcdServerCert(),
		KeyFile:        certs.EtcdServerKey(),
		TrustedCAFile:  certs.EtcdCACert(),
		ClientCertAuth: true,
	}
	host := cfg.etcdHost()
	clientURLs := []url.URL{etcdURL(cfg.EtcdClientPort)}
	advertiseClient := clientURLs
	if host != "127.0.0.1" {
		advertiseClient = []url.URL{etcdURLOn(host, cfg.EtcdClientPort)}
		clientURLs = append(clientURLs, advertiseClient...)
	}
	peerURL := etcdURLOn(host, cfg.EtcdPeerPort)

	ec := embed.NewConfig()
	ec.Name = m.name
	ec.Dir = dir
	ec.ListenClientUrls = clientURLs
	ec.AdvertiseClientUrls = advertiseClient
	ec.ListenPeerUrls = []url.URL{peerURL}
	ec.AdvertisePeerUrls = []url.URL{peerURL}
	ec.InitialCluster = m.initialCluster
	ec.ClusterState = m.state
	ec.ClientTLSInfo = tls
	ec.PeerTLSInfo = tls
	ec.ListenMetricsUrls = nil
	// Keep the history bounded: the API server compacts too, this is the backstop.
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "1h"
	// Progress notifications become the bookmarks of watches served without the watch cache
	// (bookmarks.go); the cache asks for them too.
	ec.WatchProgressNotifyInterval = cfg.WatchProgressInterval
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(etcdLogger(log))

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("starting etcd in %s: %w", dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd in %s: %w", dir, err)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("waiting for etcd: %w", ctx.Err())
	}
}

// etcdLogger writes etcd's warnings and errors to the component log. etcd ends the process on
// a fatal error, so those lines also go to stderr, where the user sees why.
func etcdLogger(w io.Writer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	toLog := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(w), zapcore.WarnLevel)
	short := zapcore.EncoderConfig{MessageKey: "msg", LevelKey: "level", NameKey: "logger",
		EncodeLevel: zapcore.LowercaseLevelEncoder, ConsoleSeparator: " "}
	toStderr := zapcore.NewCore(zapcore.NewConsoleEncoder(short), zapcore.Lock(os.Stderr), zapcore.DPanicLevel)
	return zap.New(zapcore.NewTee(toLog, toStderr)).Named("etcd")
}
