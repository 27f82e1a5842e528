package scalerelay

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func TestEndpointOf(t *testing.T) {
	id, err := Identity(EndpointURL("10.0.0.2", 6446))
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := EndpointOf(id); !ok || u != "https://10.0.0.2:6446" {
		t.Errorf("EndpointOf(%q) = %q %v", id, u, ok)
	}
	if u, ok := EndpointOf("h_1 " + EndpointURL("fd00::2", 6446)); !ok || u != "https://[fd00::2]:6446" {
		t.Errorf("IPv6: %q %v", u, ok)
	}
	for _, holder := range []string{
		"", "myhost_0f8a3c2e-uuid", // controller-runtime's own identity
		"h_1 http://10.0.0.2:6446", "h_1 https://10.0.0.2:6446/x", "h_1 https://u@10.0.0.2:6446", "h_1 https://", "h_1 ::",
	} {
		if u, ok := EndpointOf(holder); ok {
			t.Errorf("EndpointOf(%q) = %q, want none", holder, u)
		}
	}
}

// recorder is the autoscaler's side of the channel: what reached it.
type recorder struct {
	mu    sync.Mutex
	wakes []string
	stats []Stat
}

func (r *recorder) ScaleFromZero(_ context.Context, ns, rev string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wakes = append(r.wakes, ns+"/"+rev)
	return nil
}

func (r *recorder) Report(ns, name string, _ time.Time, c, rps float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats = append(r.stats, Stat{Namespace: ns, Revision: name, Concurrency: c, RPS: rps})
}

func (r *recorder) snapshot() ([]string, []Stat) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.wakes...), append([]Stat(nil), r.stats...)
}

// pki is a CA with a serving certificate for 127.0.0.1 and client certificates.
type testPKI struct {
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool
	server tls.Certificate
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	p := &testPKI{ca: ca, caKey: key, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.server = p.leaf(t, "server", x509.ExtKeyUsageServerAuth, p.ca, p.caKey)
	return p
}

func (p *testPKI) leaf(t *testing.T, cn string, usage x509.ExtKeyUsage, ca *x509.Certificate, caKey *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (p *testPKI) clientTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: p.pool, Certificates: []tls.Certificate{cert}}
}

// startServer serves the endpoint on loopback for local, answering once elected is closed.
func startServer(t *testing.T, p *testPKI, local Local, elected <-chan struct{}) *Server {
	t.Helper()
	s, err := NewServer(ServerOptions{Addr: "127.0.0.1:0", Local: local, Elected: elected, Cert: p.server, ClientCAs: p.pool, ClientName: "system:gantry"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return s
}

// leaderLease is the serving leader's Lease held by the server at addr.
func leaderLease(t *testing.T, addr string) *fake.Clientset {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	id := "host_1 https://127.0.0.1:" + port
	return fake.NewClientset(&coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "gantry-serving-controllers"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(id)},
	})
}

func newRelay(t *testing.T, p *testPKI, client *fake.Clientset, cert tls.Certificate, local Local, elected <-chan struct{}) *Relay {
	t.Helper()
	r, err := NewRelay(RelayOptions{Local: local, Elected: elected, Client: client, LeaseName: "gantry-serving-controllers", TLS: p.clientTLS(cert)})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A non-leader's wake-ups and loads reach the leader's autoscaler over the endpoint it names
// in the serving leader's Lease.
func TestRelayReachesTheLeader(t *testing.T) {
	p := newPKI(t)
	leader := &recorder{}
	elected := make(chan struct{})
	close(elected)
	srv := startServer(t, p, leader, elected)
	local := &recorder{}
	r := newRelay(t, p, leaderLease(t, srv.Addr()), p.leaf(t, "system:gantry", x509.ExtKeyUsageClientAuth, p.ca, p.caKey), local, make(chan struct{}))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.ScaleFromZero(ctx, "default", "hello-00001"); err != nil {
		t.Fatal(err)
	}
	r.Report("default", "hello-00001", time.Now(), 3, 7)
	r.Report("default", "hello-00001", time.Now(), 2, 5) // the newer load of a second wins
	r.Report("default", "other-00001", time.Now(), 1, 1)
	r.flush(ctx)
	wakes, stats := leader.snapshot()
	if len(wakes) != 1 || wakes[0] != "default/hello-00001" {
		t.Errorf("the leader's wake-ups: %v", wakes)
	}
	got := map[string]Stat{}
	for _, s := range stats {
		got[s.Revision] = s
	}
	if len(stats) != 2 || got["hello-00001"].Concurrency != 2 || got["hello-00001"].RPS != 5 || got["other-00001"].Concurrency != 1 {
		t.Errorf("the leader's loads: %+v", stats)
	}
	if w, s := local.snapshot(); len(w)+len(s) != 0 {
		t.Errorf("a non-leader's own autoscaler was called: %v %v", w, s)
	}
}

// On the leader the relay calls its own autoscaler, with no network.
func TestRelayOnTheLeaderIsInProcess(t *testing.T) {
	p := newPKI(t)
	local := &recorder{}
	elected := make(chan struct{})
	close(elected)
	r := newRelay(t, p, fake.NewClientset(), p.server, local, elected)
	if err := r.ScaleFromZero(context.Background(), "ns", "rev"); err != nil {
		t.Fatal(err)
	}
	r.Report("ns", "rev", time.Now(), 1, 2)
	if w, s := local.snapshot(); len(w) != 1 || len(s) != 1 {
		t.Errorf("in process: wakes %v, loads %v", w, s)
	}
}

// The endpoint refuses a server that does not lead, and clients without the servers'
// certificate; the relay keeps trying until its deadline.
func TestEndpointRefusals(t *testing.T) {
	p := newPKI(t)
	notLeader := &recorder{}
	srv := startServer(t, p, notLeader, make(chan struct{}))
	gantryCert := p.leaf(t, "system:gantry", x509.ExtKeyUsageClientAuth, p.ca, p.caKey)

	wake := func(cert tls.Certificate) error {
		r := newRelay(t, p, leaderLease(t, srv.Addr()), cert, &recorder{}, make(chan struct{}))
		ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
		defer cancel()
		return r.ScaleFromZero(ctx, "ns", "rev")
	}
	if err := wake(gantryCert); err == nil || !strings.Contains(err.Error(), "not the serving leader") {
		t.Errorf("a server that does not lead: %v", err)
	}
	if err := wake(p.leaf(t, "system:node:worker-1", x509.ExtKeyUsageClientAuth, p.ca, p.caKey)); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("a node's certificate: %v, want 403", err)
	}
	other := newPKI(t)
	if err := wake(other.leaf(t, "system:gantry", x509.ExtKeyUsageClientAuth, other.ca, other.caKey)); err == nil {
		t.Error("a certificate of another CA is accepted")
	}
	if w, s := notLeader.snapshot(); len(w)+len(s) != 0 {
		t.Errorf("the autoscaler of a server that does not lead was called: %v %v", w, s)
	}
	// A Lease that names no endpoint (a holder of another kind).
	r := newRelay(t, p, fake.NewClientset(&coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "gantry-serving-controllers"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To("host_0f8a-uuid")},
	}), gantryCert, &recorder{}, make(chan struct{}))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := r.ScaleFromZero(ctx, "ns", "rev"); err == nil || !strings.Contains(err.Error(), "names no autoscaler endpoint") {
		t.Errorf("a Lease without an endpoint: %v", err)
	}
}

func TestRelayBoundsItsBatch(t *testing.T) {
	p := newPKI(t)
	r := newRelay(t, p, fake.NewClientset(), p.server, &recorder{}, make(chan struct{}))
	for i := range maxPending + 5 {
		r.Report("ns", "rev-"+strings.Repeat("x", i%3)+time.Duration(i).String(), time.Now(), 1, 1)
	}
	if r.Dropped() != 5 {
		t.Errorf("dropped %d loads, want 5", r.Dropped())
	}
}
