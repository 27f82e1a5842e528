package controlplane

import (
	"bytes"
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/gantry-run/gantry/internal/atomicfile"
	"github.com/gantry-run/gantry/internal/controlplane/pki"
)

const clusterName = "gantry"

// writeKubeconfig writes a self-contained kubeconfig (certificates inline, mode 0600) for
// client c of the API server at server.
func writeKubeconfig(path, server string, certs pki.Bundle, c pki.Client) error {
	ca, err := os.ReadFile(certs.CACert())
	if err != nil {
		return err
	}
	cert, err := os.ReadFile(certs.ClientCert(c))
	if err != nil {
		return err
	}
	key, err := os.ReadFile(certs.ClientKey(c))
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[clusterName] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[c.Name] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	cfg.Contexts[clusterName] = &clientcmdapi.Context{Cluster: clusterName, AuthInfo: c.Name}
	cfg.CurrentContext = clusterName
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return atomicfile.Write(path, data, 0o600)
}

// restConfig is a client configuration for client c, read from the PKI files.
func restConfig(server string, certs pki.Bundle, c pki.Client) *rest.Config {
	return &rest.Config{
		Host: server,
		TLSClientConfig: rest.TLSClientConfig{
			CAFile:   certs.CACert(),
			CertFile: certs.ClientCert(c),
			KeyFile:  certs.ClientKey(c),
		},
		QPS:   100,
		Burst: 200,
	}
}
