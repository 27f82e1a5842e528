package pki

import (
	"crypto/x509"
	"testing"
)

// TestAggregationCredentials: the aggregator's client certificate verifies against the
// front proxy's CA and not the cluster's, and the metrics server's serving certificate
// verifies for the name the aggregator dials, against the cluster CA (the caBundle).
func TestAggregationCredentials(t *testing.T) {
	b := Bundle{Dir: t.TempDir()}
	if err := b.Ensure(Options{Hosts: []string{"127.0.0.1"}}); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	pool := func(path string) *x509.CertPool {
		c, err := readCert(path)
		if err != nil {
			t.Fatal(err)
		}
		p := x509.NewCertPool()
		p.AddCert(c)
		return p
	}
	cluster, frontProxy := pool(b.CACert()), pool(b.FrontProxyCACert())
	client, err := readCert(b.FrontProxyClientCert())
	if err != nil {
		t.Fatal(err)
	}
	clientAuth := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if _, err := client.Verify(x509.VerifyOptions{Roots: frontProxy, KeyUsages: clientAuth}); err != nil {
		t.Errorf("front-proxy client certificate does not verify against its CA: %v", err)
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: cluster, KeyUsages: clientAuth}); err == nil {
		t.Error("front-proxy client certificate verifies against the cluster CA; it must not")
	}
	if client.Subject.CommonName != FrontProxyClientName {
		t.Errorf("front-proxy client CN %q, want %q", client.Subject.CommonName, FrontProxyClientName)
	}
	serving, err := readCert(b.MetricsCert())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := serving.Verify(x509.VerifyOptions{Roots: cluster, DNSName: MetricsAPIHost}); err != nil {
		t.Errorf("metrics serving certificate does not verify for %s: %v", MetricsAPIHost, err)
	}
}
