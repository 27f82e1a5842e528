package image

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gantry-run/gantry/internal/freeport"
)

// testCA is a certificate authority for the tests of the nodes' endpoint.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// leaf issues a certificate: a server's for 127.0.0.1 when server, else a client's with
// the common name and organizations.
func (ca *testCA) leaf(t *testing.T, server bool, cn string, orgs ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// startNodeAccess serves reg to nodes on a free loopback port with a certificate of ca.
func startNodeAccess(t *testing.T, reg *Registry, ca *testCA) *NodeAccess {
	t.Helper()
	na, err := reg.NewNodeAccess(NodeAccessOptions{Addr: "127.0.0.1:0", Cert: ca.leaf(t, true, "server"), ClientCAs: ca.pool})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- na.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stopping the nodes' endpoint: %v", err)
		}
	})
	return na
}

// clientTLS trusts ca and presents cert (none when nil).
func clientTLS(ca *testCA, cert *tls.Certificate) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: ca.pool}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}

// pushRandom pushes a one-layer image to ref.
func pushRandom(t *testing.T, ctx context.Context, ref, content string) {
	t.Helper()
	pushLayers(t, ctx, ref, layerOf(t, []tarEntry{{name: "file", body: content}}))
}

// TestNodeAccessServesNodesOnly: over the network the registry answers only a node's client
// certificate of the cluster CA, and only what a pull reads; no certificate, another CA's, or a
// certificate of the cluster that is not a node's, get nothing, and pushes are refused.
func TestNodeAccessServesNodesOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reg := startRegistry(t, t.TempDir(), "")
	ref := reg.Addr() + "/tenant-a/app:v1"
	pushRandom(t, ctx, ref, "a")
	ca := newTestCA(t, "cluster")
	na := startNodeAccess(t, reg, ca)
	base := "https://" + na.Addr()

	get := func(tc *tls.Config, method, path string) (*http.Response, error) {
		t.Helper()
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
		req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	manifest := "/v2/tenant-a/app/manifests/v1"

	// Refused in the handshake.
	other := newTestCA(t, "another cluster")
	otherNode := other.leaf(t, false, NodePrefix+"w1", NodesGroup)
	for name, tc := range map[string]*tls.Config{
		"no client certificate":               clientTLS(ca, nil),
		"a node certificate of another CA":    clientTLS(ca, &otherNode),
		"a client that does not trust the CA": clientTLS(other, nil),
	} {
		if resp, err := get(tc, http.MethodGet, manifest); err == nil {
			t.Errorf("%s: GET %s answered %s, want the handshake refused", name, manifest, resp.Status)
		}
	}
	// Plain HTTP to the TLS port gets nothing either.
	if resp, err := http.Get("http://" + na.Addr() + manifest); err == nil && resp.StatusCode != http.StatusBadRequest {
		resp.Body.Close()
		t.Errorf("plain HTTP answered %s", resp.Status)
	}

	// A certificate of the cluster that is not a node's: 403.
	for name, cert := range map[string]tls.Certificate{
		"the admin":                     ca.leaf(t, false, "kubernetes-admin", "system:masters"),
		"a node name outside the group": ca.leaf(t, false, NodePrefix+"w1"),
		"the group without a node name": ca.leaf(t, false, "someone", NodesGroup),
	} {
		resp, err := get(clientTLS(ca, &cert), http.MethodGet, manifest)
		if err != nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: GET %s = %v %v, want 403", name, manifest, resp, err)
		}
	}

	node := ca.leaf(t, false, NodePrefix+"w1", NodesGroup)
	tc := clientTLS(ca, &node)
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/v2/", http.StatusOK},
		{http.MethodHead, manifest, http.StatusOK},
		{http.MethodGet, manifest, http.StatusOK},
		{http.MethodGet, "/v2/tenant-a/app/manifests/v2", http.StatusNotFound},
		{http.MethodPut, manifest, http.StatusMethodNotAllowed},
		{http.MethodDelete, manifest, http.StatusMethodNotAllowed},
		{http.MethodPost, "/v2/tenant-a/app/blobs/uploads/", http.StatusMethodNotAllowed},
		{http.MethodGet, "/v2/_catalog", http.StatusForbidden},
		{http.MethodGet, "/v2/tenant-a/app/tags/list", http.StatusForbidden},
		{http.MethodGet, "/v2/tenant-a/app/blobs/uploads/x", http.StatusForbidden},
		{http.MethodGet, "/v2/../etc/manifests/v1", http.StatusForbidden},
	} {
		resp, err := get(tc, c.method, c.path)
		if err != nil || resp.StatusCode != c.want {
			t.Errorf("a node's %s %s = %v %v, want %d", c.method, c.path, resp, err, c.want)
		}
	}

	// A node pulls the whole image through a mirror of a registry host nothing listens on.
	dead := deadAddr(t)
	m := &Mirror{Registry: dead, Endpoints: func() []string { return []string{na.Addr()} }, TLS: tc}
	s, err := NewStore(t.TempDir(), StoreOptions{Transport: m})
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Pull(ctx, dead+"/tenant-a/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(img.Layers[0], "file")); err != nil || string(b) != "a" {
		t.Errorf("the pulled layer's file = %q, %v", b, err)
	}
	if !strings.HasPrefix(img.DigestRef, dead+"/tenant-a/app@sha256:") {
		t.Errorf("DigestRef = %q: the reference names the mirrored registry, not the mirror", img.DigestRef)
	}
	// A push through the mirror is refused on the node.
	r, err := ParseReference(dead + "/tenant-a/app:v2")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, empty.Image, remote.WithContext(ctx), remote.WithTransport(m)); err == nil || !strings.Contains(err.Error(), ErrMirrorPush.Error()) {
		t.Errorf("a push through the mirror: %v, want %v", err, ErrMirrorPush)
	}
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	ports, err := freeport.Get(1)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", ports[0])
}

// TestMirrorFailsOver: the mirror passes over a server that is down and one whose registry
// lacks the image, keeps to the one that answered, falls back to the registry host itself
// after every server, and says what each one answered when none has the image.
func TestMirrorFailsOver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ca := newTestCA(t, "cluster")
	node := ca.leaf(t, false, NodePrefix+"w1", NodesGroup)
	tc := clientTLS(ca, &node)

	has := startRegistry(t, t.TempDir(), "")
	pushRandom(t, ctx, has.Addr()+"/ns/app:v1", "from-has")
	lacks := startRegistry(t, t.TempDir(), "")
	hasNA, lacksNA := startNodeAccess(t, has, ca), startNodeAccess(t, lacks, ca)
	down := deadAddr(t)

	t.Run("down, then lacking, then has", func(t *testing.T) {
		name := deadAddr(t)
		m := &Mirror{Registry: name, TLS: tc, Endpoints: func() []string { return []string{down, lacksNA.Addr(), hasNA.Addr()} }}
		s, err := NewStore(t.TempDir(), StoreOptions{Transport: m})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Pull(ctx, name+"/ns/app:v1"); err != nil {
			t.Fatal(err)
		}
		if got := m.order()[0]; got != hasNA.Addr() {
			t.Errorf("after the pull the mirror tries %s first, want the server that answered (%s)", got, hasNA.Addr())
		}
	})
	t.Run("every server down: the registry itself", func(t *testing.T) {
		m := &Mirror{Registry: has.Addr(), TLS: tc, Endpoints: func() []string { return []string{down} }}
		s, err := NewStore(t.TempDir(), StoreOptions{Transport: m})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Pull(ctx, has.Addr()+"/ns/app:v1"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("nobody has it", func(t *testing.T) {
		name := deadAddr(t)
		m := &Mirror{Registry: name, TLS: tc, Endpoints: func() []string { return []string{down, lacksNA.Addr()} }}
		s, err := NewStore(t.TempDir(), StoreOptions{Transport: m})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Pull(ctx, name+"/ns/app:v1")
		if err == nil || !strings.Contains(err.Error(), "NAME_UNKNOWN") {
			t.Errorf("pulling what no server has: %v, want the registry's NAME_UNKNOWN", err)
		}
	})
	t.Run("nobody answers", func(t *testing.T) {
		name := deadAddr(t)
		m := &Mirror{Registry: name, TLS: tc, Endpoints: func() []string { return []string{down} }}
		s, err := NewStore(t.TempDir(), StoreOptions{Transport: m})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Pull(ctx, name+"/ns/app:v1")
		if err == nil || !strings.Contains(err.Error(), "the server's registry at "+down) || !strings.Contains(err.Error(), name+" on this machine") {
			t.Errorf("pulling with no registry up: %v, want each one named", err)
		}
	})
	t.Run("other registries untouched", func(t *testing.T) {
		m := &Mirror{Registry: down, TLS: tc, Endpoints: func() []string { return []string{down} }}
		s, err := NewStore(t.TempDir(), StoreOptions{Transport: m})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Pull(ctx, has.Addr()+"/ns/app:v1"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestMirrorsOnlyItsRegistry: the registry host is matched whole, port and all.
func TestMirrorsOnlyItsRegistry(t *testing.T) {
	m := &Mirror{Registry: "127.0.0.1:5000"}
	for host, want := range map[string]bool{"127.0.0.1:5000": true, "127.0.0.1:5001": false, "localhost:5000": false, "example.com": false} {
		if got := m.Mirrors(host); got != want {
			t.Errorf("Mirrors(%q) = %t, want %t", host, got, want)
		}
	}
	if _, err := m.RoundTrip(&http.Request{Method: http.MethodPut, URL: mustURL(t, "http://127.0.0.1:5000/v2/a/manifests/b")}); !errors.Is(err, ErrMirrorPush) {
		t.Errorf("PUT through the mirror: %v, want ErrMirrorPush", err)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
