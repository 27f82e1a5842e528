// Package pki owns the certificates and keys of the embedded control plane: a cluster CA, the
// API server's serving certificate, client certificates for the admin and the in-process
// components, and the service-account signing key. Files live in one directory and are created
// once; later starts load and check them, so a restart keeps every credential it handed out.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/gantry-run/gantry/internal/atomicfile"
)

const (
	caValidity   = 10 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	// renewBefore is how close to expiry a leaf certificate is reissued at start.
	renewBefore = 30 * 24 * time.Hour
)

// Client names a client certificate: its file stem, user name and groups.
type Client struct {
	Name   string // file stem, e.g. "admin"
	User   string // certificate CN, the Kubernetes user name
	Groups []string
}

// Clients the control plane needs. The admin is a cluster superuser; the components
// authenticate as the users the bootstrap RBAC policy already grants.
var (
	Admin             = Client{Name: "admin", User: "gantry-admin", Groups: []string{"system:masters"}}
	ControllerManager = Client{Name: "controller-manager", User: "system:kube-controller-manager"}
	Scheduler         = Client{Name: "scheduler", User: "system:kube-scheduler"}
	// APIServerKubeletClient is the API server's identity towards kubelets (logs, exec).
	APIServerKubeletClient = Client{Name: "apiserver-kubelet-client", User: "kube-apiserver-kubelet-client", Groups: []string{"system:masters"}}
	// Gantry is the identity of Gantry's own in-process controllers and node.
	Gantry = Client{Name: "gantry", User: "system:gantry", Groups: []string{"system:masters"}}
)

// Node is the identity of the node called name, as a kubelet's: the Node authorizer and the
// NodeRestriction admission plugin know it by its user and group.
func Node(name string) Client {
	return Client{Name: "node-" + name, User: "system:node:" + name, Groups: []string{"system:nodes"}}
}

// Bundle is the set of files in a PKI directory.
type Bundle struct {
	Dir string
}

// File paths inside the bundle.
func (b Bundle) CACert() string            { return filepath.Join(b.Dir, "ca.crt") }
func (b Bundle) CAKey() string             { return filepath.Join(b.Dir, "ca.key") }
func (b Bundle) ServingCert() string       { return filepath.Join(b.Dir, "apiserver.crt") }
func (b Bundle) KubeletCert() string       { return filepath.Join(b.Dir, "kubelet.crt") }
func (b Bundle) KubeletKey() string        { return filepath.Join(b.Dir, "kubelet.key") }
func (b Bundle) ServingKey() string        { return filepath.Join(b.Dir, "apiserver.key") }
func (b Bundle) WebhookCert() string       { return filepath.Join(b.Dir, "webhook.crt") }
func (b Bundle) WebhookKey() string        { return filepath.Join(b.Dir, "webhook.key") }
func (b Bundle) ServiceAccountKey() string { return filepath.Join(b.Dir, "service-account.key") }
func (b Bundle) ServiceAccountPub() string { return filepath.Join(b.Dir, "service-account.pub") }

// etcd has a CA of its own, so a cluster credential never opens the datastore.
func (b Bundle) EtcdCACert() string     { return filepath.Join(b.Dir, "etcd", "ca.crt") }
func (b Bundle) EtcdCAKey() string      { return filepath.Join(b.Dir, "etcd", "ca.key") }
func (b Bundle) EtcdServerCert() string { return filepath.Join(b.Dir, "etcd", "server.crt") }
func (b Bundle) EtcdServerKey() string  { return filepath.Join(b.Dir, "etcd", "server.key") }
func (b Bundle) EtcdClientCert() string { return filepath.Join(b.Dir, "etcd", "apiserver-client.crt") }
func (b Bundle) EtcdClientKey() string  { return filepath.Join(b.Dir, "etcd", "apiserver-client.key") }

// ClientCert and ClientKey are the files of client c.
func (b Bundle) ClientCert(c Client) string { return filepath.Join(b.Dir, c.Name+".crt") }
func (b Bundle) ClientKey(c Client) string  { return filepath.Join(b.Dir, c.Name+".key") }

// Options say what the serving certificate must cover.
type Options struct {
	// Hosts are the DNS names and IP addresses the API server is reached at.
	Hosts []string
	// EtcdHosts are those etcd is reached at (its peers and the other servers); empty means
	// loopback.
	EtcdHosts []string
	// Now is the time certificates are issued at; zero means time.Now.
	Now time.Time
}

// Ensure creates the files that are missing and checks the ones that exist. A leaf certificate
// that is close to expiry, or a serving certificate that does not cover every host, is
// reissued from the CA; the CA itself is never replaced. A file that exists but cannot be read
// is an error naming it: nothing is overwritten.
func (b Bundle) Ensure(opts Options, clients ...Client) error {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	if err := os.MkdirAll(filepath.Join(b.Dir, "etcd"), 0o700); err != nil {
		return fmt.Errorf("creating PKI directory: %w", err)
	}
	if err := b.ensureEtcd(now, opts.EtcdHosts); err != nil {
		return err
	}
	ca, caKey, err := ensureCA(b.CACert(), b.CAKey(), "gantry-ca", now)
	if err != nil {
		return err
	}
	dns, ips := splitHosts(opts.Hosts)
	serving := leafSpec{
		subject: pkix.Name{CommonName: "kube-apiserver"},
		usages:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		dns:     dns,
		ips:     ips,
	}
	if err := ensureLeaf(b.ServingCert(), b.ServingKey(), serving, ca, caKey, now); err != nil {
		return err
	}
	// The admission webhook runs in this process and is called over loopback.
	webhook := leafSpec{
		subject: pkix.Name{CommonName: "gantry-webhook"},
		usages:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		dns:     []string{"localhost"},
		ips:     []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if err := ensureLeaf(b.WebhookCert(), b.WebhookKey(), webhook, ca, caKey, now); err != nil {
		return err
	}
	if err := b.ensureAggregation(ca, caKey, now); err != nil {
		return err
	}
	for _, c := range clients {
		spec := leafSpec{
			subject: pkix.Name{CommonName: c.User, Organization: c.Groups},
			usages:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if err := ensureLeaf(b.ClientCert(c), b.ClientKey(c), spec, ca, caKey, now); err != nil {
			return err
		}
	}
	return b.ensureServiceAccountKey()
}

// EnsureKubelet issues the kubelet API's serving certificate of the server's own node, from
// the cluster CA, for hosts (its name and addresses): the API server checks it against the CA
// when it calls the node (logs, exec, port-forward). It is reissued when it does not cover a
// host, or nears its end.
func (b Bundle) EnsureKubelet(node string, hosts []string, now time.Time) error {
	if now.IsZero() {
		now = time.Now()
	}
	ca, err := readCert(b.CACert())
	if err != nil {
		return err
	}
	caKey, err := readKey(b.CAKey())
	if err != nil {
		return err
	}
	dns, ips := splitHosts(hosts)
	spec := leafSpec{
		subject: pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}},
		usages:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		dns:     dns,
		ips:     ips,
	}
	return ensureLeaf(b.KubeletCert(), b.KubeletKey(), spec, ca, caKey, now)
}

// ensureEtcd creates etcd's CA, its serving certificate (for hosts; loopback when none) and
// the API server's client certificate for it.
func (b Bundle) ensureEtcd(now time.Time, hosts []string) error {
	ca, caKey, err := ensureCA(b.EtcdCACert(), b.EtcdCAKey(), "gantry-etcd-ca", now)
	if err != nil {
		return err
	}
	dns, ips := splitHosts(hosts)
	if len(dns)+len(ips) == 0 {
		dns, ips = []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	server := leafSpec{
		subject: pkix.Name{CommonName: "etcd"},
		usages:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		dns:     dns,
		ips:     ips,
	}
	if err := ensureLeaf(b.EtcdServerCert(), b.EtcdServerKey(), server, ca, caKey, now); err != nil {
		return err
	}
	client := leafSpec{
		subject: pkix.Name{CommonName: "kube-apiserver-etcd-client"},
		usages:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return ensureLeaf(b.EtcdClientCert(), b.EtcdClientKey(), client, ca, caKey, now)
}

func ensureCA(certPath, keyPath, commonName string, now time.Time) (*x509.Certificate, crypto.Signer, error) {
	certExists, keyExists := exists(certPath), exists(keyPath)
	if certExists != keyExists {
		missing := keyPath
		if !certExists {
			missing = certPath
		}
		return nil, nil, fmt.Errorf("%s is missing but its pair exists: restore it from a backup (a new CA would lock out every credential issued so far)", missing)
	}
	if certExists {
		cert, err := readCert(certPath)
		if err != nil {
			return nil, nil, err
		}
		key, err := readKey(keyPath)
		if err != nil {
			return nil, nil, err
		}
		if !publicKeysEqual(cert.PublicKey, key.Public()) {
			return nil, nil, fmt.Errorf("%s does not belong to %s", keyPath, certPath)
		}
		return cert, key, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing CA certificate: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	if err := writeKey(keyPath, key); err != nil {
		return nil, nil, err
	}
	if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
		return nil, nil, err
	}
	return cert, key, nil
}

type leafSpec struct {
	subject pkix.Name
	usages  []x509.ExtKeyUsage
	dns     []string
	ips     []net.IP
}

// covers reports whether cert was issued for spec by ca and stays valid past the renewal margin.
func (s leafSpec) covers(cert *x509.Certificate, ca *x509.Certificate, now time.Time) bool {
	if cert.CheckSignatureFrom(ca) != nil || now.Add(renewBefore).After(cert.NotAfter) {
		return false
	}
	if cert.Subject.CommonName != s.subject.CommonName || !slices.Equal(cert.Subject.Organization, s.subject.Organization) {
		return false
	}
	for _, d := range s.dns {
		if !slices.Contains(cert.DNSNames, d) {
			return false
		}
	}
	for _, ip := range s.ips {
		if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func ensureLeaf(certPath, keyPath string, spec leafSpec, ca *x509.Certificate, caKey crypto.Signer, now time.Time) error {
	var key crypto.Signer
	if exists(keyPath) {
		k, err := readKey(keyPath)
		if err != nil {
			return err
		}
		key = k
		if exists(certPath) {
			cert, err := readCert(certPath)
			if err != nil {
				return err
			}
			if publicKeysEqual(cert.PublicKey, key.Public()) && spec.covers(cert, ca, now) {
				return nil
			}
		}
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return fmt.Errorf("generating key for %s: %w", certPath, err)
		}
		if err := writeKey(keyPath, k); err != nil {
			return err
		}
		key = k
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               spec.subject,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(leafValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           spec.usages,
		BasicConstraintsValid: true,
		DNSNames:              spec.dns,
		IPAddresses:           spec.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("signing %s: %w", certPath, err)
	}
	return writePEM(certPath, "CERTIFICATE", der, 0o644)
}

func (b Bundle) ensureServiceAccountKey() error {
	keyPath, pubPath := b.ServiceAccountKey(), b.ServiceAccountPub()
	var key crypto.Signer
	if exists(keyPath) {
		k, err := readKey(keyPath)
		if err != nil {
			return err
		}
		key = k
	} else {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return fmt.Errorf("generating service-account key: %w", err)
		}
		if err := writeKey(keyPath, k); err != nil {
			return err
		}
		key = k
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return fmt.Errorf("encoding service-account public key: %w", err)
	}
	return writePEM(pubPath, "PUBLIC KEY", der, 0o644)
}

func splitHosts(hosts []string) (dns []string, ips []net.IP) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else if h != "" {
			dns = append(dns, h)
		}
	}
	return dns, ips
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("reading random serial: %v", err)) // crypto/rand does not fail on Linux
	}
	return n
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

func readCert(path string) (*x509.Certificate, error) {
	block, err := readPEM(path, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s is corrupt: %w", path, err)
	}
	return cert, nil
}

func readKey(path string) (crypto.Signer, error) {
	block, err := readPEM(path, "EC PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	key, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s is corrupt: %w", path, err)
	}
	return key, nil
}

func readPEM(path, wantType string) (*pem.Block, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s is corrupt: no PEM block", path)
	}
	if block.Type != wantType {
		return nil, fmt.Errorf("%s is corrupt: PEM block %q, want %q", path, block.Type, wantType)
	}
	return block, nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

// writePEM writes atomically: a crash leaves the old file or the new one, never half of one.
func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	return atomicfile.Write(path, data, mode)
}
