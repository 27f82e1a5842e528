package controlplane

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/gantry-run/gantry/internal/atomicfile"
	"github.com/gantry-run/gantry/internal/controlplane/pki"
)

// Bounds of a server's join.
const (
	// bootstrapTimeout bounds fetching the cluster's shared state from the server joined.
	bootstrapTimeout = time.Minute
	// etcdCallTimeout bounds one call to the etcd cluster (member list, add, promote).
	etcdCallTimeout = 10 * time.Second
	// promoteInterval is the wait between two promotions of a learner that is not caught up.
	promoteInterval = 500 * time.Millisecond
)

// memberNameFile keeps the name of a joined server's etcd member. It lives in etcd's own
// directory, so a snapshot restore, which sets that directory aside, makes the server the
// single member EtcdMemberName again.
const memberNameFile = "gantry-member-name"

// Bootstrap is what a joining server takes from the cluster it joins: the keys every server
// shares and where the etcd members serve clients.
type Bootstrap struct {
	// Files are the shared PKI files (SharedFiles), by path relative to the PKI directory.
	Files map[string][]byte
	// EtcdEndpoints are the etcd members' client URLs.
	EtcdEndpoints []string
}

// JoinSource fetches a cluster's Bootstrap from a server over an authenticated channel
// (internal/join does, with a server token).
type JoinSource interface {
	Fetch(ctx context.Context) (Bootstrap, error)
}

// SharedFiles are the PKI files every server of a cluster holds alike, relative to the PKI
// directory: the cluster CA (it signs every credential and the kubelets' certificates), etcd's
// CA (members trust each other by it), the front proxy's CA, and the service-account signing
// key (a token one API server signs, every other one accepts). Each server issues its own
// leaf certificates from them.
func SharedFiles() []string {
	b := pki.Bundle{Dir: "."}
	var rel []string
	for _, p := range []string{b.CACert(), b.CAKey(), b.EtcdCACert(), b.EtcdCAKey(),
		b.FrontProxyCACert(), b.FrontProxyCAKey(), b.ServiceAccountKey()} {
		rel = append(rel, filepath.Clean(p))
	}
	return rel
}

// Clustered reports whether the server's etcd is, or may become, one member of several: it
// was started with --cluster-init or joins another server.
func (c Config) Clustered() bool { return c.ClusterInit || c.Join != nil }

// etcdHost is the address etcd's peers and the other servers reach this member at: the
// advertise address of a clustered server, else loopback.
func (c Config) etcdHost() string {
	if c.Clustered() && c.AdvertiseAddress != "" {
		return c.AdvertiseAddress
	}
	return "127.0.0.1"
}

// etcdHosts are the names etcd's serving certificate covers.
func (c Config) etcdHosts() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h := c.etcdHost(); h != "127.0.0.1" {
		hosts = append(hosts, h)
	}
	return hosts
}

// takeBootstrap gives a data dir that has not joined yet the cluster's shared keys, fetched
// from the server joined, and keeps the etcd endpoints for the join. A data dir whose etcd
// member exists has joined already (or is another cluster's): nothing is fetched.
func (cp *ControlPlane) takeBootstrap() error {
	if etcdMemberExists(etcdDataDir(cp.dir.Path)) {
		if _, err := os.Stat(filepath.Join(etcdDataDir(cp.dir.Path), memberNameFile)); err != nil {
			return fmt.Errorf("--server: the data dir %s holds an etcd member that never joined a cluster: a server joins with a fresh --data-dir", cp.dir.Path)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootstrapTimeout)
	defer cancel()
	b, err := cp.cfg.Join.Fetch(ctx)
	if err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	for _, rel := range SharedFiles() {
		data, ok := b.Files[rel]
		if !ok {
			return fmt.Errorf("--server: the server did not send %s", rel)
		}
		path := filepath.Join(cp.certs.Dir, rel)
		if cur, err := os.ReadFile(path); err == nil {
			if !bytes.Equal(cur, data) {
				return fmt.Errorf("--server: the data dir %s holds another cluster's %s: a server joins with a fresh --data-dir", cp.dir.Path, rel)
			}
			continue
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(rel, ".key") {
			mode = 0o600
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		if err := atomicfile.Write(path, data, mode); err != nil {
			return fmt.Errorf("--server: %w", err)
		}
	}
	if len(b.EtcdEndpoints) == 0 {
		return errors.New("--server: the server names no etcd member to join")
	}
	cp.joinEndpoints = b.EtcdEndpoints
	return nil
}

func hasName(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, memberNameFile))
	return err == nil
}

func etcdMemberExists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "member"))
	return err == nil
}

// etcdMember is how this server's etcd member starts.
type etcdMember struct {
	name string
	// initialCluster and state are etcd's --initial-cluster and --initial-cluster-state;
	// they matter only to a member without data.
	initialCluster string
	state          string
}

// member decides this server's etcd member: the single member EtcdMemberName of a server
// that did not join (a first start with --cluster-init too), else the joined member of its
// own name. A joining server without etcd data is added to the cluster as a learner first.
func (cp *ControlPlane) member(ctx context.Context) (etcdMember, error) {
	dir := etcdDataDir(cp.dir.Path)
	peer := cp.peerURL()
	if b, err := os.ReadFile(filepath.Join(dir, memberNameFile)); err == nil && etcdMemberExists(dir) {
		// A joined member restarts from its data: the initial cluster is not read. (A name
		// without data is a join that stopped before etcd started: it is done again.)
		name := strings.TrimSpace(string(b))
		return etcdMember{name: name, initialCluster: name + "=" + peer, state: "existing"}, nil
	}
	if cp.cfg.Join == nil && hasName(dir) {
		return etcdMember{}, fmt.Errorf("data dir %s: its join of a cluster did not finish: start it again with --server and the token", cp.dir.Path)
	}
	if cp.cfg.Join == nil || (etcdMemberExists(dir) && !hasName(dir)) {
		return etcdMember{name: EtcdMemberName, initialCluster: EtcdMemberName + "=" + peer, state: "new"}, nil
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return etcdMember{}, err
	}
	name := EtcdMemberName + "-" + hex.EncodeToString(suffix)
	initial, err := cp.addLearner(ctx, name, peer)
	if err != nil {
		return etcdMember{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return etcdMember{}, err
	}
	if err := atomicfile.Write(filepath.Join(dir, memberNameFile), []byte(name+"\n"), 0o600); err != nil {
		return etcdMember{}, err
	}
	return etcdMember{name: name, initialCluster: initial, state: "existing"}, nil
}

func (cp *ControlPlane) peerURL() string {
	u := etcdURLOn(cp.cfg.etcdHost(), cp.cfg.EtcdPeerPort)
	return u.String()
}

// etcdClient is a client of the etcd cluster at endpoints, with the API server's client
// certificate for etcd.
func (cp *ControlPlane) etcdClient(endpoints []string) (*clientv3.Client, error) {
	tlsInfo := transport.TLSInfo{
		CertFile:      cp.certs.EtcdClientCert(),
		KeyFile:       cp.certs.EtcdClientKey(),
		TrustedCAFile: cp.certs.EtcdCACert(),
	}
	tlsConfig, err := tlsInfo.ClientConfig()
	if err != nil {
		return nil, err
	}
	return clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tlsConfig, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

// addLearner adds this server's member to the cluster as a learner (it votes only once
// promoted, so a new member that is still catching up cannot cost the cluster its quorum)
// and returns the initial cluster it starts with. A learner or unstarted member left at the
// same peer URL by an earlier attempt is removed first.
func (cp *ControlPlane) addLearner(ctx context.Context, name, peer string) (string, error) {
	cli, err := cp.etcdClient(cp.joinEndpoints)
	if err != nil {
		return "", err
	}
	defer func() { _ = cli.Close() }()
	callCtx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
	defer cancel()
	list, err := cli.MemberList(callCtx)
	if err != nil {
		return "", fmt.Errorf("--server: listing the cluster's etcd members at %s: %w", strings.Join(cp.joinEndpoints, ","), err)
	}
	for _, m := range list.Members {
		if !slices.Contains(m.PeerURLs, peer) {
			continue
		}
		if m.Name != "" && !m.IsLearner {
			return "", fmt.Errorf("--etcd-peer-port: the cluster already has a voting member %s at %s: remove it first (or choose another address)", m.Name, peer)
		}
		if _, err := cli.MemberRemove(callCtx, m.ID); err != nil {
			return "", fmt.Errorf("--server: removing the member left at %s by an earlier join: %w", peer, err)
		}
	}
	// etcd refuses a member while its leader has not been connected to every voting member
	// for a few seconds (its strict reconfiguration check): just after another server joined,
	// or while a member is down. Retried until ctx ends.
	var added *clientv3.MemberAddResponse
	for {
		addCtx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
		added, err = cli.MemberAddAsLearner(addCtx, []string{peer})
		cancel()
		if err == nil {
			break
		}
		if !errors.Is(err, rpctypes.ErrUnhealthy) {
			return "", fmt.Errorf("--server: adding this server's etcd member as a learner: %w", err)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("--server: adding this server's etcd member as a learner: %w (is every server of the cluster up?)", err)
		case <-time.After(promoteInterval):
		}
	}
	var initial []string
	for _, m := range added.Members {
		n := m.Name
		if m.ID == added.Member.ID {
			n = name
		}
		if n == "" {
			continue // another member added but not started: it is not in the cluster yet
		}
		for _, u := range m.PeerURLs {
			initial = append(initial, n+"="+u)
		}
	}
	return strings.Join(initial, ","), nil
}

// promote makes this server's learner a voting member once it has caught up with the
// leader: etcd refuses the promotion until then, so it is retried until ctx ends.
func (cp *ControlPlane) promote(ctx context.Context) error {
	self := cp.etcd.Server.MemberID()
	var endpoints []string
	for _, m := range cp.etcd.Server.Cluster().Members() {
		if m.ID != self {
			endpoints = append(endpoints, m.ClientURLs...)
		}
	}
	if len(endpoints) == 0 {
		return errors.New("etcd: this member is a learner of a cluster with no other member to promote it")
	}
	cli, err := cp.etcdClient(endpoints)
	if err != nil {
		return err
	}
	defer func() { _ = cli.Close() }()
	var last error
	for {
		callCtx, cancel := context.WithTimeout(ctx, etcdCallTimeout)
		_, last = cli.MemberPromote(callCtx, uint64(self))
		cancel()
		if last == nil || errors.Is(last, rpctypes.ErrMemberNotLearner) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd: promoting this server's learner: %w (last: %w)", ctx.Err(), last)
		case <-time.After(promoteInterval):
		}
	}
}

// Bootstrap is the state a joining server takes from this one: the shared PKI files and the
// etcd members' client URLs.
func (cp *ControlPlane) Bootstrap() (Bootstrap, error) {
	b := Bootstrap{Files: map[string][]byte{}}
	for _, rel := range SharedFiles() {
		data, err := os.ReadFile(filepath.Join(cp.certs.Dir, rel))
		if err != nil {
			return Bootstrap{}, err
		}
		b.Files[rel] = data
	}
	if cp.etcd == nil {
		return Bootstrap{}, errors.New("etcd is not running")
	}
	for _, m := range cp.etcd.Server.Cluster().Members() {
		b.EtcdEndpoints = append(b.EtcdEndpoints, m.ClientURLs...)
	}
	slices.Sort(b.EtcdEndpoints)
	return b, nil
}

// etcdURLOn is etcd's URL at host:port, TLS.
func etcdURLOn(host string, port int) url.URL {
	return url.URL{Scheme: "https", Host: net.JoinHostPort(host, fmt.Sprint(port))}
}
