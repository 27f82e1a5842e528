package agent

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/join"
	"github.com/gantry-run/gantry/internal/loadbalancer"
)

// registryMirror is how the node reaches the servers' embedded registry: the images pods name
// with cfg.RegistryAddr (the server's loopback registry) come from the servers' registry for
// nodes, on each API server's host at cfg.RegistryNodePort, in the load balancer's order (the
// servers of --server, then those the cluster lists), over TLS verified by the cluster CA
// with the node's client certificate. The certificate is read at each handshake, so a renewed
// one is used as soon as it is written.
func registryMirror(cfg Config, creds join.Credentials, lb *loadbalancer.LoadBalancer) (*image.Mirror, error) {
	caPEM, err := os.ReadFile(creds.CAFile)
	if err != nil {
		return nil, fmt.Errorf("the cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("the cluster CA: no certificate in %s", creds.CAFile)
	}
	tlsCfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c, err := tls.LoadX509KeyPair(creds.ClientCert, creds.ClientKey)
			if err != nil {
				return nil, fmt.Errorf("the node's client certificate: %w", err)
			}
			return &c, nil
		},
	}
	return &image.Mirror{
		Registry:  cfg.RegistryAddr,
		Endpoints: func() []string { return RegistryEndpoints(lb.Servers(), cfg.RegistryNodePort) },
		TLS:       tlsCfg,
		Base:      remote.DefaultTransport,
	}, nil
}

// RegistryEndpoints are the servers' registries for nodes: each API server's host (host:port)
// with port, each once, in the servers' order.
func RegistryEndpoints(servers []string, port int) []string {
	out := make([]string, 0, len(servers))
	for _, s := range servers {
		host, _, err := net.SplitHostPort(s)
		if err != nil {
			continue
		}
		if ep := net.JoinHostPort(host, strconv.Itoa(port)); !slices.Contains(out, ep) {
			out = append(out, ep)
		}
	}
	return out
}
