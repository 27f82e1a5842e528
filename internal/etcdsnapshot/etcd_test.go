package etcdsnapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/gantry-run/gantry/internal/controlplane/pki"
	"github.com/gantry-run/gantry/internal/freeport"
)

// testEtcd is a real etcd, TLS with client certificates as gantry server runs it.
type testEtcd struct {
	certs              pki.Bundle
	clientURL, peerURL string
	e                  *embed.Etcd
}

func startTestEtcd(t *testing.T, certs pki.Bundle, dir, clientURL, peerURL string) *testEtcd {
	t.Helper()
	tls := transport.TLSInfo{CertFile: certs.EtcdServerCert(), KeyFile: certs.EtcdServerKey(), TrustedCAFile: certs.EtcdCACert(), ClientCertAuth: true}
	cu, _ := url.Parse(clientURL)
	pu, _ := url.Parse(peerURL)
	ec := embed.NewConfig()
	ec.Name = "gantry"
	ec.Dir = dir
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	ec.InitialCluster = "gantry=" + peerURL
	ec.ClientTLSInfo, ec.PeerTLSInfo = tls, tls
	ec.ListenMetricsUrls = nil
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(ec)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		t.Fatal("etcd not ready after 30s")
	}
	te := &testEtcd{certs: certs, clientURL: clientURL, peerURL: peerURL, e: e}
	t.Cleanup(te.stop)
	return te
}

func (te *testEtcd) stop() {
	if te.e != nil {
		te.e.Close()
		<-te.e.Server.StopNotify()
		te.e = nil
	}
}

func (te *testEtcd) source() Source {
	return Source{Endpoint: te.clientURL, CACert: te.certs.EtcdCACert(), Cert: te.certs.EtcdClientCert(), Key: te.certs.EtcdClientKey()}
}

func (te *testEtcd) client(t *testing.T) *clientv3.Client {
	t.Helper()
	tlsConfig, err := transport.TLSInfo{CertFile: te.certs.EtcdClientCert(), KeyFile: te.certs.EtcdClientKey(), TrustedCAFile: te.certs.EtcdCACert()}.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{te.clientURL}, TLS: tlsConfig, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSaveAndRestore saves a snapshot of a real etcd, restores it in place of the etcd's data
// dir, and starts etcd on it: what was written before the snapshot is back, what came after is
// not, and the old data dir is kept aside.
func TestSaveAndRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	root := t.TempDir()
	certs := pki.Bundle{Dir: filepath.Join(root, "pki")}
	if err := certs.Ensure(pki.Options{Hosts: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	ports, err := freeport.Get(2)
	if err != nil {
		t.Fatal(err)
	}
	clientURL, peerURL := fmt.Sprintf("https://127.0.0.1:%d", ports[0]), fmt.Sprintf("https://127.0.0.1:%d", ports[1])
	etcdDir := filepath.Join(root, "etcd")
	te := startTestEtcd(t, certs, etcdDir, clientURL, peerURL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := te.client(t)
	if _, err := c.Put(ctx, "/registry/configmaps/default/before", "1"); err != nil {
		t.Fatal(err)
	}

	snapDir := filepath.Join(root, "snapshots")
	at := time.Date(2026, 7, 29, 12, 0, 0, 0, time.UTC)
	sn, st, err := te.source().Save(ctx, snapDir, OnDemand, at)
	if err != nil {
		t.Fatal(err)
	}
	if sn.File != FileName(OnDemand, at) || sn.Size == 0 || st.Keys < 1 || st.Revision < 2 {
		t.Errorf("Save = %+v, %+v; want the file named for its time, with the key", sn, st)
	}
	if left, _ := os.ReadDir(snapDir); len(left) != 1 {
		t.Errorf("snapshot dir holds %d entries, want just the snapshot (no temporary files)", len(left))
	}
	if got, err := Verify(sn.Path); err != nil || got != st {
		t.Errorf("Verify = %+v, %v; want %+v", got, err, st)
	}
	if _, err := c.Put(ctx, "/registry/configmaps/default/after", "2"); err != nil {
		t.Fatal(err)
	}
	te.stop()

	now := at.Add(time.Hour)
	aside, err := Restore(RestoreOptions{Snapshot: sn.Path, EtcdDir: etcdDir, MemberName: "gantry", PeerURL: peerURL, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if want := etcdDir + ".before-restore-20260729T130000Z"; aside != want {
		t.Errorf("old data kept in %q, want %q", aside, want)
	}
	if _, err := os.Stat(filepath.Join(aside, "member", "snap", "db")); err != nil {
		t.Errorf("the old data is not whole aside: %v", err)
	}

	te = startTestEtcd(t, certs, etcdDir, clientURL, peerURL)
	c = te.client(t)
	resp, err := c.Get(ctx, "/registry/configmaps/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, kv := range resp.Kvs {
		keys = append(keys, string(kv.Key))
	}
	if strings.Join(keys, ",") != "/registry/configmaps/default/before" {
		t.Errorf("keys after restore = %v, want only the one written before the snapshot", keys)
	}
	// The revision moved forward past everything before, so old watchers list again.
	if resp.Header.Revision < revisionBump {
		t.Errorf("revision after restore = %d, want at least %d", resp.Header.Revision, revisionBump)
	}
}

func TestSaveWithoutEtcd(t *testing.T) {
	ports, err := freeport.Get(1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, _, err = Source{Endpoint: fmt.Sprintf("https://127.0.0.1:%d", ports[0])}.Save(context.Background(), dir, OnDemand, t0)
	if err == nil || !strings.Contains(err.Error(), "etcd does not answer") {
		t.Errorf("Save with nothing listening = %v, want %v", err, ErrUnreachable)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("a failed save left %d files", len(left))
	}
}

func TestVerifyRefusesDamage(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		what, path, want string
	}{
		{"missing", filepath.Join(dir, "missing.db"), "no such file"},
		{"no checksum", write("raw.db", make([]byte, 4096)), "no SHA-256"},
		{"checksum does not match", write("bad.db", make([]byte, 4096+32)), "does not match"},
		{"not a database", write("junk.db", withSum(bytes.Repeat([]byte("junk"), 1024))), "not a whole etcd database"},
	} {
		_, err := Verify(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Verify = %v, want an error with %q", tc.what, err, tc.want)
		}
	}
}

// withSum appends data's SHA-256, as etcd's Snapshot API does.
func withSum(data []byte) []byte {
	sum := sha256.Sum256(data)
	return append(data, sum[:]...)
}

func TestRestoreFailureLeavesEtcdDir(t *testing.T) {
	root := t.TempDir()
	etcdDir := filepath.Join(root, "etcd")
	if err := os.MkdirAll(filepath.Join(etcdDir, "member"), 0o700); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(root, "bad.db")
	if err := os.WriteFile(bad, withSum(make([]byte, 4096)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(RestoreOptions{Snapshot: bad, EtcdDir: etcdDir, MemberName: "gantry", PeerURL: "https://127.0.0.1:2380", Now: t0}); err == nil {
		t.Fatal("Restore of a damaged snapshot = nil error")
	}
	entries, _ := os.ReadDir(root)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "bad.db,etcd" {
		t.Errorf("after a failed restore the dir holds %v, want bad.db and etcd only", names)
	}
	if _, err := os.Stat(filepath.Join(etcdDir, "member")); err != nil {
		t.Errorf("the etcd dir was touched: %v", err)
	}
}
