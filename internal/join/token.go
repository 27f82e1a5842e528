// Package join is how a machine joins a Gantry cluster as an agent, the way kubeadm and k3s
// join nodes, on Kubernetes' own mechanisms:
//
//   - the server keeps a join token, K10<ca-hash>::<id>.<secret>: a bootstrap token (a Secret
//     in kube-system the API server authenticates) and the SHA-256 of the cluster CA;
//   - the agent reads the kube-public/cluster-info ConfigMap without credentials, checks that
//     the CA in it is the one the token pins and that the controller-manager's bootstrap signer
//     signed it with the token (so the server knows the token), and only then trusts the server;
//   - with the bootstrap token, the agent asks for a client certificate of its node
//     (system:node:<name>, a CertificateSigningRequest); the server's approver holds each node
//     name to the key that first claimed it, so no agent can take another's node; the
//     controller-manager signs; from then on the agent is a node, held by the Node authorizer
//     and NodeRestriction to its own Node and pods;
//   - as that node, it asks for its kubelet API's serving certificate the same way.
package join

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// tokenPrefix starts a join token, as k3s's do: K10 and the CA's hash.
const tokenPrefix = "K10"

// Token is a join token: the cluster CA's hash and a bootstrap token.
type Token struct {
	// CAHash is the hex SHA-256 of the cluster CA certificate (DER).
	CAHash string
	// ID and Secret are the bootstrap token's: [a-z0-9]{6} and [a-z0-9]{16}.
	ID, Secret string
}

var (
	idRE     = regexp.MustCompile(`^[a-z0-9]{6}$`)
	secretRE = regexp.MustCompile(`^[a-z0-9]{16}$`)
	hashRE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// String is the token as the agent takes it.
func (t Token) String() string { return tokenPrefix + t.CAHash + "::" + t.ID + "." + t.Secret }

// Bearer is the bootstrap token the API server authenticates: <id>.<secret>.
func (t Token) Bearer() string { return t.ID + "." + t.Secret }

// ParseToken reads a join token; the error says what is wrong with it, not the token.
func ParseToken(s string) (Token, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return Token{}, fmt.Errorf("a join token starts with %s (gantry server writes it to <data-dir>/token)", tokenPrefix)
	}
	hash, boot, ok := strings.Cut(rest, "::")
	if !ok {
		return Token{}, errors.New("a join token is K10<ca-hash>::<id>.<secret>: the :: is missing")
	}
	id, secret, ok := strings.Cut(boot, ".")
	if !hashRE.MatchString(hash) {
		return Token{}, errors.New("the CA hash of the join token is not 64 hex digits")
	}
	if !ok || !idRE.MatchString(id) || !secretRE.MatchString(secret) {
		return Token{}, errors.New("the join token's <id>.<secret> is not 6 and 16 lowercase letters or digits")
	}
	return Token{CAHash: hash, ID: id, Secret: secret}, nil
}

// NewToken makes a token of fresh random id and secret for the CA in caPEM.
func NewToken(caPEM []byte) (Token, error) {
	hash, err := CAHash(caPEM)
	if err != nil {
		return Token{}, err
	}
	id, err := randomString(6)
	if err != nil {
		return Token{}, err
	}
	secret, err := randomString(16)
	if err != nil {
		return Token{}, err
	}
	return Token{CAHash: hash, ID: id, Secret: secret}, nil
}

// CAHash is the hex SHA-256 of the first certificate in caPEM.
func CAHash(caPEM []byte) (string, error) {
	block, _ := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", errors.New("no PEM certificate in the CA data")
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return "", fmt.Errorf("the CA certificate: %w", err)
	}
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:]), nil
}

const tokenAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

func randomString(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	for i := range b {
		// 256 is not a multiple of 36: drop the few values that would bias the choice.
		for b[i] >= 252 {
			var one [1]byte
			if _, err := rand.Read(one[:]); err != nil {
				return "", err
			}
			b[i] = one[0]
		}
		b[i] = tokenAlphabet[int(b[i])%len(tokenAlphabet)]
	}
	return string(b), nil
}
