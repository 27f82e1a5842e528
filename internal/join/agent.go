package join

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/certificate/csr"
	"k8s.io/client-go/util/keyutil"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"

	"github.com/gantry-run/gantry/internal/atomicfile"
)

// Bounds of the agent's side of the join.
const (
	discoveryTimeout = 30 * time.Second
	// signatureWait is how long the agent waits for the bootstrap signer to sign cluster-info
	// with its token (a server that has just started may not have yet).
	signatureWait = 20 * time.Second
	certWait      = 2 * time.Minute
	// renewBefore: a certificate that ends sooner is asked for again.
	renewBefore = 24 * time.Hour
)

// Discover reads the server's cluster-info without credentials, and returns its CA once it is
// the CA the token pins and the server has signed cluster-info with the token. Nothing is sent
// to a server that fails either check but that anonymous read.
func Discover(ctx context.Context, server string, tok Token) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	// Not trusted yet: the CA hash is what makes it so.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // verified by the pinned CA hash below
	url := strings.TrimSuffix(server, "/") + ClusterInfoPath
	deadline := time.Now().Add(signatureWait)
	for {
		ca, kubeconfig, sigs, err := fetchClusterInfo(ctx, client, url)
		if err != nil {
			return nil, err
		}
		hash, err := CAHash(ca)
		if err != nil {
			return nil, fmt.Errorf("the server's cluster-info: %w", err)
		}
		if hash != tok.CAHash {
			return nil, fmt.Errorf("the server's CA (sha256:%.12s…) is not the one the token pins (sha256:%.12s…): the token is another cluster's", hash, tok.CAHash)
		}
		if sig, ok := sigs[tok.ID]; ok {
			if !jws.DetachedTokenIsValid(sig, kubeconfig, tok.ID, tok.Secret) {
				return nil, errors.New("the token is not valid for this server: its secret is wrong")
			}
			return ca, nil
		}
		if time.Now().After(deadline) {
			return nil, errors.New("the token is not valid for this server: the server does not know its id (rotated, or mistyped?)")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// fetchClusterInfo GETs cluster-info: the CA from its kubeconfig, the kubeconfig as signed,
// and the signatures by token id.
func fetchClusterInfo(ctx context.Context, client *http.Client, url string) (ca []byte, kubeconfig string, sigs map[string]string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", nil, fmt.Errorf("reaching the server: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, "", nil, fmt.Errorf("reading cluster-info: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", nil, fmt.Errorf("the server answers %s for cluster-info: is it a gantry server?", resp.Status)
	}
	var cm corev1.ConfigMap
	if err := json.Unmarshal(body, &cm); err != nil {
		return nil, "", nil, fmt.Errorf("cluster-info: %w", err)
	}
	kubeconfig = cm.Data[bootstrapapi.KubeConfigKey]
	cfg, err := clientcmd.Load([]byte(kubeconfig))
	if err != nil {
		return nil, "", nil, fmt.Errorf("cluster-info's kubeconfig: %w", err)
	}
	for _, c := range cfg.Clusters {
		ca = c.CertificateAuthorityData
	}
	sigs = map[string]string{}
	for k, v := range cm.Data {
		if id, ok := strings.CutPrefix(k, bootstrapapi.JWSSignatureKeyPrefix); ok {
			sigs[id] = v
		}
	}
	return ca, kubeconfig, sigs, nil
}

// Credentials are a joined agent's files.
type Credentials struct {
	// Kubeconfig is the node's client configuration (its client certificate).
	Kubeconfig string
	// CAFile is the cluster CA; ServingCert and ServingKey the kubelet API's.
	CAFile, ServingCert, ServingKey string
	// ClientCert and ClientKey are the node's client certificate and key (the kubeconfig's).
	ClientCert, ClientKey string
}

// NodeOptions say who the agent is and where it keeps its credentials.
type NodeOptions struct {
	Server   string
	Token    Token
	NodeName string
	// Dir keeps the keys and certificates (mode 0700).
	Dir string
	// Addresses and Hosts go into the kubelet API's serving certificate.
	Addresses []net.IP
	Hosts     []string
}

// Join makes the agent a node: the CA by discovery, a client certificate for the node (asked
// with the token, kept and reused while it is valid), and the kubelet API's serving
// certificate (asked as the node).
func Join(ctx context.Context, o NodeOptions) (Credentials, error) {
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return Credentials{}, err
	}
	creds := Credentials{
		Kubeconfig:  filepath.Join(o.Dir, "node.kubeconfig"),
		CAFile:      filepath.Join(o.Dir, "ca.crt"),
		ServingCert: filepath.Join(o.Dir, "kubelet.crt"),
		ServingKey:  filepath.Join(o.Dir, "kubelet.key"),
	}
	ca, err := Discover(ctx, o.Server, o.Token)
	if err != nil {
		return Credentials{}, err
	}
	if err := atomicfile.Write(creds.CAFile, ca, 0o644); err != nil {
		return Credentials{}, err
	}
	boot := &rest.Config{Host: o.Server, BearerToken: o.Token.Bearer(), TLSClientConfig: rest.TLSClientConfig{CAData: ca}, Timeout: 30 * time.Second}
	subject := &pkix.Name{CommonName: nodePrefix + o.NodeName, Organization: []string{nodesGroup}}

	certFile, keyFile := filepath.Join(o.Dir, "node.crt"), filepath.Join(o.Dir, "node.key")
	creds.ClientCert, creds.ClientKey = certFile, keyFile
	if err := ensureCert(ctx, boot, certFile, keyFile, subject, nil, nil, certificatesv1.KubeAPIServerClientKubeletSignerName,
		[]certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageClientAuth}); err != nil {
		return Credentials{}, fmt.Errorf("the node's client certificate: %w", err)
	}
	nodeCfg := &rest.Config{Host: o.Server, TLSClientConfig: rest.TLSClientConfig{CAData: ca, CertFile: certFile, KeyFile: keyFile}, Timeout: 30 * time.Second}
	if err := writeKubeconfig(creds.Kubeconfig, o.Server, ca, certFile, keyFile); err != nil {
		return Credentials{}, err
	}
	if err := ensureCert(ctx, nodeCfg, creds.ServingCert, creds.ServingKey, subject, o.Hosts, o.Addresses, certificatesv1.KubeletServingSignerName,
		[]certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageServerAuth}); err != nil {
		return Credentials{}, fmt.Errorf("the kubelet API's serving certificate: %w", err)
	}
	return creds, nil
}

// RESTConfig is the node's client configuration from its credentials.
func (c Credentials) RESTConfig() (*rest.Config, error) {
	return clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
}

// ensureCert keeps certFile when it is valid for a while yet and covers the names; else it asks
// the signer for one with the key in keyFile (made once and kept: the node's identity).
func ensureCert(ctx context.Context, cfg *rest.Config, certFile, keyFile string, subject *pkix.Name, hosts []string, ips []net.IP, signer string, usages []certificatesv1.KeyUsage) error {
	key, err := loadOrMakeKey(keyFile)
	if err != nil {
		return err
	}
	if certValid(certFile, key, subject.CommonName, hosts, ips) {
		return nil
	}
	req, err := certutil.MakeCSR(key, subject, hosts, ips)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, certWait)
	defer cancel()
	name, uid, err := csr.RequestCertificateWithContext(ctx, client, req, "", signer, nil, usages, key)
	if apierrors.IsUnauthorized(err) {
		return errors.New("the server refused the token (401): it is not valid for this server")
	}
	if err != nil {
		return err
	}
	cert, err := csr.WaitForCertificate(ctx, client, name, uid)
	if err != nil {
		// A denial says why in one line: the approver's message.
		if req, gerr := client.CertificatesV1().CertificateSigningRequests().Get(context.WithoutCancel(ctx), name, metav1.GetOptions{}); gerr == nil {
			for _, c := range req.Status.Conditions {
				if c.Type == certificatesv1.CertificateDenied {
					return errors.New("denied: " + c.Message)
				}
			}
		}
		return err
	}
	return atomicfile.Write(certFile, cert, 0o600)
}

func loadOrMakeKey(path string) (*ecdsa.PrivateKey, error) {
	if b, err := os.ReadFile(path); err == nil {
		k, err := keyutil.ParsePrivateKeyPEM(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%s: not an ECDSA key", path)
		}
		return ec, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return key, nil
}

// certValid reports whether certFile holds a certificate of key for cn, covering the hosts and
// addresses, that stays valid beyond renewBefore.
func certValid(certFile string, key *ecdsa.PrivateKey, cn string, hosts []string, ips []net.IP) bool {
	certs, err := certutil.CertsFromFile(certFile)
	if err != nil || len(certs) == 0 {
		return false
	}
	c := certs[0]
	if c.Subject.CommonName != cn || time.Until(c.NotAfter) < renewBefore || !key.PublicKey.Equal(c.PublicKey) {
		return false
	}
	for _, h := range hosts {
		if c.VerifyHostname(h) != nil {
			return false
		}
	}
	for _, ip := range ips {
		if c.VerifyHostname(ip.String()) != nil {
			return false
		}
	}
	return true
}

func writeKubeconfig(path, server string, ca []byte, certFile, keyFile string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["gantry"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	kc.AuthInfos["node"] = &clientcmdapi.AuthInfo{ClientCertificate: certFile, ClientKey: keyFile}
	kc.Contexts["node"] = &clientcmdapi.Context{Cluster: "gantry", AuthInfo: "node"}
	kc.CurrentContext = "node"
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o600)
}
