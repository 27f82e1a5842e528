package pki

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"path/filepath"
	"time"
)

// FrontProxyClientName is the user the API server's aggregator presents to aggregated API
// servers: the only name --requestheader-allowed-names accepts, and the one they check.
const FrontProxyClientName = "front-proxy-client"

// MetricsAPIHost is the name the aggregator verifies the resource metrics server's
// certificate against: <service>.<namespace>.svc of the Service its APIService names.
const MetricsAPIHost = "gantry-metrics.gantry-system.svc"

// The aggregator's credentials: a CA of its own (a cluster client certificate must not pass
// for the aggregator, so the front proxy does not share the cluster CA), its client
// certificate, and the resource metrics server's serving certificate.
func (b Bundle) FrontProxyCACert() string     { return filepath.Join(b.Dir, "front-proxy-ca.crt") }
func (b Bundle) FrontProxyCAKey() string      { return filepath.Join(b.Dir, "front-proxy-ca.key") }
func (b Bundle) FrontProxyClientCert() string { return filepath.Join(b.Dir, "front-proxy-client.crt") }
func (b Bundle) FrontProxyClientKey() string  { return filepath.Join(b.Dir, "front-proxy-client.key") }
func (b Bundle) MetricsCert() string          { return filepath.Join(b.Dir, "metrics.crt") }
func (b Bundle) MetricsKey() string           { return filepath.Join(b.Dir, "metrics.key") }

// ensureAggregation creates the front proxy's CA and client certificate, and the metrics
// server's serving certificate from the cluster CA (the APIService's caBundle).
func (b Bundle) ensureAggregation(ca *x509.Certificate, caKey crypto.Signer, now time.Time) error {
	fpCA, fpKey, err := ensureCA(b.FrontProxyCACert(), b.FrontProxyCAKey(), "gantry-front-proxy-ca", now)
	if err != nil {
		return err
	}
	client := leafSpec{
		subject: pkix.Name{CommonName: FrontProxyClientName},
		usages:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if err := ensureLeaf(b.FrontProxyClientCert(), b.FrontProxyClientKey(), client, fpCA, fpKey, now); err != nil {
		return err
	}
	serving := leafSpec{
		subject: pkix.Name{CommonName: "gantry-metrics"},
		usages:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		dns:     []string{MetricsAPIHost},
	}
	return ensureLeaf(b.MetricsCert(), b.MetricsKey(), serving, ca, caKey, now)
}
