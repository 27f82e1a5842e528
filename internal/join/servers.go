package join

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"

	"github.com/gantry-run/gantry/internal/atomicfile"
)

// Servers join a cluster the way agents do, with a token of their own: the server token.
//
//   - A server started with --cluster-init writes <data-dir>/server-token: a bootstrap token in
//     AgentGroup and ServerGroup, so it joins servers and agents alike (as k3s's server token).
//   - The agent token (<data-dir>/token) is in AgentGroup only: it may ask for node certificates
//     and nothing else, so it cannot make a server, which would hold the cluster's keys.
//   - The keys every server shares (the CAs, the service-account signing key) and the etcd
//     members' client URLs are kept in the Secret kube-system/ServerBootstrapSecret, which only
//     ServerGroup may read (and cluster admins). A joining server discovers the server as an
//     agent does (the CA the token pins, cluster-info signed with the token) and then reads it
//     with the token over TLS verified by that CA.

// ServerGroup is the group of a request made with the server token: it may read the servers'
// bootstrap Secret.
const ServerGroup = "system:bootstrappers:gantry:servers"

// ServerBootstrapSecret is the Secret in kube-system that holds what a joining server takes.
const ServerBootstrapSecret = "gantry-server-bootstrap"

// serverBootstrapKey is the Secret's one key: ServerBootstrap as JSON.
const serverBootstrapKey = "bootstrap.json"

// serverTokenLabel marks the server token's bootstrap Secret (managedLabel marks the agents').
const serverTokenLabel = "gantry.dev/server-token"

// serverBootstrapReader is the Role and RoleBinding that let ServerGroup read the Secret.
const serverBootstrapReader = "gantry:server-bootstrap-reader"

// ServerBootstrap is what a joining server takes from the cluster.
type ServerBootstrap struct {
	// Files are the shared PKI files by path relative to the PKI directory.
	Files map[string][]byte `json:"files"`
	// EtcdEndpoints are the etcd members' client URLs.
	EtcdEndpoints []string `json:"etcdEndpoints"`
}

// tokenKind is one of the two tokens a server keeps: the agents' or the servers'.
type tokenKind struct {
	label, groups, description string
}

var (
	agentToken  = tokenKind{label: managedLabel, groups: AgentGroup, description: "gantry agent join token (gantry agent --help)"}
	serverToken = tokenKind{label: serverTokenLabel, groups: AgentGroup + "," + ServerGroup, description: "gantry server join token (gantry server --server)"}
)

// ensureServerToken keeps the server token in file, its bootstrap Secret, the bootstrap Secret
// of the shared state, and the RBAC that lets the token's holders read it.
func ensureServerToken(ctx context.Context, client kubernetes.Interface, opts EnsureOptions) error {
	tok, err := readOrMakeToken(ctx, client, opts.ServerTokenFile, opts.CA, false, true, serverToken)
	if err != nil {
		return err
	}
	if err := ensureBootstrapSecret(ctx, client, tok, serverToken); err != nil {
		return err
	}
	b, err := opts.ServerBootstrap()
	if err != nil {
		return fmt.Errorf("the servers' bootstrap: %w", err)
	}
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	secrets := client.CoreV1().Secrets(metav1.NamespaceSystem)
	want := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: ServerBootstrapSecret, Namespace: metav1.NamespaceSystem},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{serverBootstrapKey: data},
	}
	cur, err := secrets.Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = secrets.Create(ctx, want, metav1.CreateOptions{})
	case err == nil && string(cur.Data[serverBootstrapKey]) != string(data):
		cur.Data = want.Data
		_, err = secrets.Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("the servers' bootstrap Secret: %w", err)
	}
	rbac := client.RbacV1()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: serverBootstrapReader, Namespace: metav1.NamespaceSystem},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"secrets"},
			ResourceNames: []string{ServerBootstrapSecret}, Verbs: []string{"get"},
		}},
	}
	if err := createOrUpdate(ctx, role, rbac.Roles(role.Namespace).Create, rbac.Roles(role.Namespace).Update); err != nil {
		return err
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: serverBootstrapReader, Namespace: metav1.NamespaceSystem},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: serverBootstrapReader},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: ServerGroup}},
	}
	return createOrUpdate(ctx, binding, rbac.RoleBindings(binding.Namespace).Create, rbac.RoleBindings(binding.Namespace).Update)
}

// FetchServerBootstrap is a joining server's side: it trusts the server only once Discover has
// checked its CA against the token, then reads the servers' bootstrap Secret with the token.
// An agent token is refused there, by the API server's RBAC.
func FetchServerBootstrap(ctx context.Context, server string, tok Token) (ServerBootstrap, error) {
	ca, err := Discover(ctx, server, tok)
	if err != nil {
		return ServerBootstrap{}, err
	}
	client, err := kubernetes.NewForConfig(&rest.Config{Host: server, BearerToken: tok.Bearer(), TLSClientConfig: rest.TLSClientConfig{CAData: ca}, Timeout: 30 * time.Second})
	if err != nil {
		return ServerBootstrap{}, err
	}
	s, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, ServerBootstrapSecret, metav1.GetOptions{})
	switch {
	case apierrors.IsForbidden(err):
		return ServerBootstrap{}, errors.New("the token is an agent token: it joins agents, not servers (give the server token, <data-dir>/server-token of a server started with --cluster-init)")
	case apierrors.IsUnauthorized(err):
		return ServerBootstrap{}, errors.New("the server refused the token (401): it is not valid for this server")
	case apierrors.IsNotFound(err):
		return ServerBootstrap{}, errors.New("the server has no bootstrap for servers: start the first server with --cluster-init")
	case err != nil:
		return ServerBootstrap{}, fmt.Errorf("reading the servers' bootstrap: %w", err)
	}
	var b ServerBootstrap
	if err := json.Unmarshal(s.Data[serverBootstrapKey], &b); err != nil {
		return ServerBootstrap{}, fmt.Errorf("the servers' bootstrap: %w", err)
	}
	return b, nil
}

// adoptToken is the token of kind the cluster already has, for a server whose token file is
// missing (a server that joined keeps the cluster's tokens, it does not replace them).
func adoptToken(ctx context.Context, client kubernetes.Interface, hash string, kind tokenKind) (Token, bool, error) {
	list, err := client.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{LabelSelector: kind.label})
	if err != nil {
		return Token{}, false, fmt.Errorf("join token: listing the cluster's tokens: %w", err)
	}
	for _, s := range list.Items {
		id, secret := string(s.Data[bootstrapapi.BootstrapTokenIDKey]), string(s.Data[bootstrapapi.BootstrapTokenSecretKey])
		if idRE.MatchString(id) && secretRE.MatchString(secret) && strings.HasPrefix(s.Name, bootstrapapi.BootstrapTokenSecretPrefix) {
			return Token{CAHash: hash, ID: id, Secret: secret}, true, nil
		}
	}
	return Token{}, false, nil
}

// writeToken writes tok to path, mode 0600.
func writeToken(path string, tok Token) error {
	if err := atomicfile.Write(path, []byte(tok.String()+"\n"), 0o600); err != nil {
		return fmt.Errorf("join token: %w", err)
	}
	return nil
}
