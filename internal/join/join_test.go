package join

import (
	"context"
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
	"strings"
	"sync/atomic"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	certutil "k8s.io/client-go/util/cert"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
)

func testCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestTokenRoundTripAndErrors(t *testing.T) {
	tok, err := NewToken(testCA(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseToken(tok.String() + "\n")
	if err != nil || got != tok {
		t.Fatalf("ParseToken(%q) = %+v, %v; want %+v", tok, got, err, tok)
	}
	if !strings.HasPrefix(tok.String(), "K10") || tok.Bearer() != tok.ID+"."+tok.Secret {
		t.Errorf("token %q, bearer %q", tok, tok.Bearer())
	}
	hash := strings.Repeat("a", 64)
	for s, want := range map[string]string{
		"":                                "starts with K10",
		"K10" + hash:                      "the :: is missing",
		"K10abc::abcdef.0123456789abcdef": "64 hex digits",
		"K10" + hash + "::abcdef":         "6 and 16",
		"K10" + hash + "::ABCDEF.0123456789abcdef": "6 and 16",
	} {
		if _, err := ParseToken(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseToken(%q) = %v, want an error with %q", s, err, want)
		}
	}
}

func TestEnsureWritesTokenSecretClusterInfoAndRotates(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	ca := testCA(t)
	file := filepath.Join(t.TempDir(), "token")
	opts := EnsureOptions{TokenFile: file, Server: "https://10.0.0.1:6443", CA: ca}
	first, err := Ensure(ctx, client, opts)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(file); err != nil || strings.TrimSpace(string(b)) != first.String() {
		t.Fatalf("token file %q, %v", b, err)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", st.Mode().Perm())
	}
	sec, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, "bootstrap-token-"+first.ID, metav1.GetOptions{})
	if err != nil || string(sec.Data[bootstrapapi.BootstrapTokenExtraGroupsKey]) != AgentGroup || string(sec.Data[bootstrapapi.BootstrapTokenUsageSigningKey]) != "true" {
		t.Fatalf("bootstrap secret %+v, %v", sec, err)
	}
	cm, err := client.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, "cluster-info", metav1.GetOptions{})
	if err != nil || !strings.Contains(cm.Data["kubeconfig"], "https://10.0.0.1:6443") {
		t.Fatalf("cluster-info %v, %v", cm, err)
	}
	// A second start keeps the token.
	again, err := Ensure(ctx, client, opts)
	if err != nil || again != first {
		t.Fatalf("a restart changed the token: %v, %v", again, err)
	}
	// A rotation replaces it, and the old one stops working.
	opts.Rotate = true
	rotated, err := Ensure(ctx, client, opts)
	if err != nil || rotated.ID == first.ID {
		t.Fatalf("rotation: %v, %v", rotated, err)
	}
	if _, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, "bootstrap-token-"+first.ID, metav1.GetOptions{}); err == nil {
		t.Error("the rotated-out token's Secret is still there")
	}
}

// nodeCSR is a certificate request for node name's client certificate (or its serving one,
// with addresses).
var csrCount atomic.Int64

func nodeCSR(t *testing.T, key *ecdsa.PrivateKey, name, signer, user string, groups []string, ips ...net.IP) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	req, err := certutil.MakeCSR(key, &pkix.Name{CommonName: "system:node:" + name, Organization: []string{"system:nodes"}}, nil, ips)
	if err != nil {
		t.Fatal(err)
	}
	usage := certificatesv1.UsageClientAuth
	if signer == certificatesv1.KubeletServingSignerName {
		usage = certificatesv1.UsageServerAuth
	}
	return &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "csr-", Name: fmt.Sprintf("csr-%d", csrCount.Add(1))},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request: req, SignerName: signer, Username: user, Groups: groups,
			Usages: []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, usage},
		},
	}
}

func decision(t *testing.T, a *Approver, csr *certificatesv1.CertificateSigningRequest) (certificatesv1.RequestConditionType, string) {
	t.Helper()
	ctx := context.Background()
	if _, err := a.client.CertificatesV1().CertificateSigningRequests().Create(ctx, csr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.decide(ctx, csr); err != nil {
		t.Fatalf("decide: %v", err)
	}
	got, err := a.client.CertificatesV1().CertificateSigningRequests().Get(ctx, csr.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range got.Status.Conditions {
		return c.Type, c.Message
	}
	return "", ""
}

// TestApproverHoldsANodeNameToItsKey: the first agent to claim a name gets it; another agent
// claiming it with another key is denied, naming the Secret to delete; the first agent renews.
func TestApproverHoldsANodeNameToItsKey(t *testing.T) {
	a := NewApprover(fake.NewClientset(), nil)
	boot := []string{"system:bootstrappers", AgentGroup, "system:authenticated"}
	keyA, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keyB, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	client := certificatesv1.KubeAPIServerClientKubeletSignerName

	if typ, msg := decision(t, a, nodeCSR(t, keyA, "worker-1", client, "system:bootstrap:abcdef", boot)); typ != certificatesv1.CertificateApproved {
		t.Fatalf("the first claim of worker-1: %s %s", typ, msg)
	}
	typ, msg := decision(t, a, nodeCSR(t, keyB, "worker-1", client, "system:bootstrap:abcdef2", boot))
	if typ != certificatesv1.CertificateDenied || !strings.Contains(msg, "belongs to another agent") || !strings.Contains(msg, NodeIdentityPrefix+"worker-1") {
		t.Errorf("another agent claiming worker-1: %s %q; want denied, naming the Secret", typ, msg)
	}
	if typ, msg := decision(t, a, nodeCSR(t, keyA, "worker-1", client, "system:node:worker-1", []string{"system:nodes"})); typ != certificatesv1.CertificateApproved {
		t.Errorf("worker-1 renewing with its key: %s %s", typ, msg)
	}
	if typ, msg := decision(t, a, nodeCSR(t, keyB, "worker-2", client, "system:node:worker-1", []string{"system:nodes"})); typ != certificatesv1.CertificateDenied {
		t.Errorf("worker-1 asking for worker-2's certificate: %s %s; want denied", typ, msg)
	}
	// Requests of others are left alone.
	other := nodeCSR(t, keyA, "worker-3", client, "alice", []string{"system:authenticated"})
	if typ, _ := decision(t, a, other); typ != "" {
		t.Errorf("a request of someone else was decided: %s", typ)
	}

	serving := certificatesv1.KubeletServingSignerName
	if typ, msg := decision(t, a, nodeCSR(t, keyA, "worker-1", serving, "system:node:worker-1", []string{"system:nodes"}, net.ParseIP("10.0.0.5"))); typ != certificatesv1.CertificateApproved {
		t.Errorf("worker-1's serving certificate: %s %s", typ, msg)
	}
	if typ, _ := decision(t, a, nodeCSR(t, keyA, "worker-2", serving, "system:node:worker-1", []string{"system:nodes"}, net.ParseIP("10.0.0.6"))); typ != certificatesv1.CertificateDenied {
		t.Errorf("worker-1 asking for worker-2's serving certificate: %s; want denied", typ)
	}
}
