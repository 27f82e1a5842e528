package pki

import (
	"crypto/x509"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestEnsureCreatesAChainThatVerifies(t *testing.T) {
	b := Bundle{Dir: t.TempDir()}
	opts := Options{Hosts: []string{"127.0.0.1", "localhost", "kubernetes.default.svc"}}
	if err := b.Ensure(opts, Admin, Scheduler); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	ca, err := readCert(b.CACert())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	serving, err := readCert(b.ServingCert())
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "localhost", "kubernetes.default.svc"} {
		if _, err := serving.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Errorf("serving cert does not verify for %s: %v", host, err)
		}
	}
	admin, err := readCert(b.ClientCert(Admin))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("admin cert does not verify as a client: %v", err)
	}
	if admin.Subject.CommonName != Admin.User || admin.Subject.Organization[0] != "system:masters" {
		t.Errorf("admin subject = %v, want CN=%s O=system:masters", admin.Subject, Admin.User)
	}
	for _, f := range []string{b.CAKey(), b.ServingKey(), b.ClientKey(Admin), b.ServiceAccountKey()} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", f, st.Mode().Perm())
		}
	}
}

func TestEnsureIsStableAcrossStarts(t *testing.T) {
	b := Bundle{Dir: t.TempDir()}
	opts := Options{Hosts: []string{"127.0.0.1"}}
	if err := b.Ensure(opts, Admin); err != nil {
		t.Fatal(err)
	}
	before := readAll(t, b.CACert(), b.ServingCert(), b.ClientCert(Admin), b.ServiceAccountKey())
	if err := b.Ensure(opts, Admin); err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	after := readAll(t, b.CACert(), b.ServingCert(), b.ClientCert(Admin), b.ServiceAccountKey())
	for f := range before {
		if before[f] != after[f] {
			t.Errorf("%s was rewritten on a second start", f)
		}
	}
}

func TestServingCertIsReissuedForNewHostButCAKept(t *testing.T) {
	b := Bundle{Dir: t.TempDir()}
	if err := b.Ensure(Options{Hosts: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	ca := readAll(t, b.CACert())
	if err := b.Ensure(Options{Hosts: []string{"127.0.0.1", "10.1.2.3"}}); err != nil {
		t.Fatal(err)
	}
	serving, err := readCert(b.ServingCert())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ip := range serving.IPAddresses {
		found = found || ip.Equal(net.ParseIP("10.1.2.3"))
	}
	if !found {
		t.Errorf("serving cert IPs = %v, want 10.1.2.3 among them", serving.IPAddresses)
	}
	if got := readAll(t, b.CACert()); got[b.CACert()] != ca[b.CACert()] {
		t.Error("the CA was replaced")
	}
}

func TestExpiringLeafIsRenewed(t *testing.T) {
	b := Bundle{Dir: t.TempDir()}
	start := time.Now()
	if err := b.Ensure(Options{Now: start}, Admin); err != nil {
		t.Fatal(err)
	}
	old, _ := readCert(b.ClientCert(Admin))
	if err := b.Ensure(Options{Now: start.Add(leafValidity - renewBefore/2)}, Admin); err != nil {
		t.Fatal(err)
	}
	renewed, _ := readCert(b.ClientCert(Admin))
	if !renewed.NotAfter.After(old.NotAfter) {
		t.Errorf("NotAfter = %v, want later than %v", renewed.NotAfter, old.NotAfter)
	}
}

func TestCorruptFilesAreNamedAndKept(t *testing.T) {
	tests := []struct {
		name    string
		file    func(Bundle) string
		content string
		wantErr string
	}{
		{"garbage CA cert", Bundle.CACert, "not pem", "ca.crt is corrupt: no PEM block"},
		{"key in place of cert", Bundle.CACert, "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n", `ca.crt is corrupt: PEM block "EC PRIVATE KEY", want "CERTIFICATE"`},
		{"garbage service-account key", Bundle.ServiceAccountKey, "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n", "service-account.key is corrupt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Bundle{Dir: t.TempDir()}
			if err := b.Ensure(Options{}); err != nil {
				t.Fatal(err)
			}
			path := tt.file(b)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			err := b.Ensure(Options{})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Ensure = %v, want error containing %q", err, tt.wantErr)
			}
			if got := readAll(t, path)[path]; got != tt.content {
				t.Errorf("%s was overwritten", path)
			}
		})
	}
}

func TestMissingCAKeyIsRefused(t *testing.T) {
	b := Bundle{Dir: t.TempDir()}
	if err := b.Ensure(Options{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(b.CAKey()); err != nil {
		t.Fatal(err)
	}
	err := b.Ensure(Options{})
	if err == nil || !strings.Contains(err.Error(), "ca.key is missing") {
		t.Fatalf("Ensure = %v, want a missing-CA-key error", err)
	}
}

func readAll(t *testing.T, paths ...string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m[p] = string(b)
	}
	return m
}

// TestKubeletServingCertVerifiesForTheNode: the server's node's kubelet API certificate
// verifies against the cluster CA for the node's name and address (as the API server checks
// it), and is reissued when the node's address changes.
func TestKubeletServingCertVerifiesForTheNode(t *testing.T) {
	b := Bundle{Dir: t.TempDir()}
	if err := b.Ensure(Options{Hosts: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	ca, err := readCert(b.CACert())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	check := func(hosts ...string) {
		t.Helper()
		cert, err := readCert(b.KubeletCert())
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hosts {
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: h}); err != nil {
				t.Errorf("the kubelet certificate does not verify for %s: %v", h, err)
			}
		}
		if cert.Subject.CommonName != "system:node:gantry" {
			t.Errorf("subject %v", cert.Subject)
		}
	}
	if err := b.EnsureKubelet("gantry", []string{"gantry", "10.0.0.5"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	check("gantry", "10.0.0.5")
	if err := b.EnsureKubelet("gantry", []string{"gantry", "10.0.0.6"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	check("gantry", "10.0.0.6")
}
