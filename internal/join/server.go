package join

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
)

// AgentGroup is the group the API server gives a request made with the join token, besides
// system:bootstrappers: it may ask for node certificates and nothing else.
const AgentGroup = "system:bootstrappers:gantry:agents"

// managedLabel marks the bootstrap tokens gantry server keeps, so a rotation removes the old.
const managedLabel = "gantry.dev/join-token"

// ClusterInfoPath is what the API server answers without credentials besides its health:
// the cluster-info ConfigMap, which carries the CA and nothing secret.
const ClusterInfoPath = "/api/v1/namespaces/" + metav1.NamespacePublic + "/configmaps/" + bootstrapapi.ConfigMapClusterInfo

// EnsureOptions say where the token lives and how agents reach the server.
type EnsureOptions struct {
	// TokenFile holds the token (mode 0600); Ensure writes it when it is missing, when the CA
	// changed, or when Rotate is set.
	TokenFile string
	// Server is the API server's URL as agents reach it; CA its CA certificate (PEM).
	Server string
	CA     []byte
	Rotate bool
	// Clustered is set for a server of several (--cluster-init, --server): the tokens the
	// cluster has win over the files, which each server keeps a copy in.
	Clustered bool
	// ServerTokenFile, when set, holds the server token (ServerGroup), and ServerBootstrap
	// gives what a joining server takes; both are for --cluster-init and --server only.
	ServerTokenFile string
	ServerBootstrap func() (ServerBootstrap, error)
	// AgentFlags are more flags the printed agent command needs (the registry's, when not
	// the defaults).
	AgentFlags []string
}

// Ensure makes the cluster joinable with the token in opts.TokenFile: the bootstrap token's
// Secret (older Gantry tokens are removed), the cluster-info ConfigMap, and the RBAC that lets
// anyone read cluster-info and the token's holders ask for node certificates.
func Ensure(ctx context.Context, client kubernetes.Interface, opts EnsureOptions) (Token, error) {
	tok, err := readOrMakeToken(ctx, client, opts.TokenFile, opts.CA, opts.Rotate, opts.Clustered, agentToken)
	if err != nil {
		return Token{}, err
	}
	if err := ensureBootstrapSecret(ctx, client, tok, agentToken); err != nil {
		return Token{}, err
	}
	if opts.ServerTokenFile != "" {
		if err := ensureServerToken(ctx, client, opts); err != nil {
			return Token{}, err
		}
	}
	if err := ensureClusterInfo(ctx, client, opts.Server, opts.CA); err != nil {
		return Token{}, err
	}
	if err := ensureRBAC(ctx, client); err != nil {
		return Token{}, err
	}
	return tok, nil
}

// readOrMakeToken is the token of kind kept in file: the file's, while it pins this CA; else,
// on a server of several, the cluster's; else a new one.
func readOrMakeToken(ctx context.Context, client kubernetes.Interface, file string, ca []byte, rotate, clustered bool, kind tokenKind) (Token, error) {
	hash, err := CAHash(ca)
	if err != nil {
		return Token{}, err
	}
	if rotate {
		return newTokenFile(file, ca)
	}
	if clustered {
		// Each server keeps a copy: the cluster's token wins, so servers never fight.
		tok, ok, err := adoptToken(ctx, client, hash, kind)
		if err != nil {
			return Token{}, err
		}
		if ok {
			if b, err := os.ReadFile(file); err != nil || strings.TrimSpace(string(b)) != tok.String() {
				if err := writeToken(file, tok); err != nil {
					return Token{}, err
				}
			}
			return tok, nil
		}
	}
	b, err := os.ReadFile(file)
	switch {
	case err == nil:
		if tok, err := ParseToken(string(b)); err == nil && tok.CAHash == hash {
			return tok, nil
		}
	case !errors.Is(err, os.ErrNotExist):
		return Token{}, fmt.Errorf("join token: %w", err)
	}
	return newTokenFile(file, ca)
}

func newTokenFile(file string, ca []byte) (Token, error) {
	tok, err := NewToken(ca)
	if err != nil {
		return Token{}, err
	}
	return tok, writeToken(file, tok)
}

func ensureBootstrapSecret(ctx context.Context, client kubernetes.Interface, tok Token, kind tokenKind) error {
	secrets := client.CoreV1().Secrets(metav1.NamespaceSystem)
	want := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: bootstrapapi.BootstrapTokenSecretPrefix + tok.ID, Namespace: metav1.NamespaceSystem, Labels: map[string]string{kind.label: "true"}},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		Data: map[string][]byte{
			bootstrapapi.BootstrapTokenIDKey:               []byte(tok.ID),
			bootstrapapi.BootstrapTokenSecretKey:           []byte(tok.Secret),
			bootstrapapi.BootstrapTokenUsageAuthentication: []byte("true"),
			bootstrapapi.BootstrapTokenUsageSigningKey:     []byte("true"),
			bootstrapapi.BootstrapTokenExtraGroupsKey:      []byte(kind.groups),
			bootstrapapi.BootstrapTokenDescriptionKey:      []byte(kind.description),
		},
	}
	cur, err := secrets.Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := secrets.Create(ctx, want, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("join token: creating its Secret: %w", err)
		}
	case err != nil:
		return fmt.Errorf("join token: reading its Secret: %w", err)
	case string(cur.Data[bootstrapapi.BootstrapTokenSecretKey]) != tok.Secret || string(cur.Data[bootstrapapi.BootstrapTokenExtraGroupsKey]) != kind.groups:
		cur.Data, cur.Labels = want.Data, want.Labels
		if _, err := secrets.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("join token: updating its Secret: %w", err)
		}
	}
	// An earlier token of Gantry's stops working.
	old, err := secrets.List(ctx, metav1.ListOptions{LabelSelector: kind.label})
	if err != nil {
		return fmt.Errorf("join token: listing earlier tokens: %w", err)
	}
	for _, s := range old.Items {
		if s.Name != want.Name {
			if err := secrets.Delete(ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("join token: removing the earlier token %s: %w", s.Name, err)
			}
		}
	}
	return nil
}

// ensureClusterInfo writes kube-public/cluster-info: a kubeconfig with the server and its CA,
// which the controller-manager's bootstrap signer signs with each signing token.
func ensureClusterInfo(ctx context.Context, client kubernetes.Interface, server string, ca []byte) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters[""] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return err
	}
	cms := client.CoreV1().ConfigMaps(metav1.NamespacePublic)
	cur, err := cms.Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: bootstrapapi.ConfigMapClusterInfo, Namespace: metav1.NamespacePublic},
			Data:       map[string]string{bootstrapapi.KubeConfigKey: string(data)},
		}, metav1.CreateOptions{})
	case err != nil:
	case cur.Data[bootstrapapi.KubeConfigKey] != string(data):
		if cur.Data == nil {
			cur.Data = map[string]string{}
		}
		// The signatures were of the old content: the bootstrap signer makes new ones.
		for k := range cur.Data {
			if strings.HasPrefix(k, bootstrapapi.JWSSignatureKeyPrefix) {
				delete(cur.Data, k)
			}
		}
		cur.Data[bootstrapapi.KubeConfigKey] = string(data)
		_, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("the cluster-info ConfigMap: %w", err)
	}
	return nil
}

// RBAC names.
const (
	clusterInfoReader = "gantry:cluster-info-reader"
	agentBootstrapper = "gantry:agent-bootstrapper"
	// APIServersReader lets nodes (group system:nodes) read the EndpointSlice "kubernetes" in
	// default, in which the API servers list their addresses: agents learn the cluster's
	// servers from it, as k3s's agents do from the kubernetes Endpoints.
	APIServersReader = "gantry:api-servers-reader"
)

func ensureRBAC(ctx context.Context, client kubernetes.Interface) error {
	rbac := client.RbacV1()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: clusterInfoReader, Namespace: metav1.NamespacePublic},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"configmaps"},
			ResourceNames: []string{bootstrapapi.ConfigMapClusterInfo}, Verbs: []string{"get"},
		}},
	}
	if err := createOrUpdate(ctx, role, rbac.Roles(role.Namespace).Create, rbac.Roles(role.Namespace).Update); err != nil {
		return err
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: clusterInfoReader, Namespace: metav1.NamespacePublic},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: clusterInfoReader},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "system:anonymous"}},
	}
	if err := createOrUpdate(ctx, binding, rbac.RoleBindings(binding.Namespace).Create, rbac.RoleBindings(binding.Namespace).Update); err != nil {
		return err
	}
	// The token's holders may create certificate requests; Gantry's approver decides them
	// (the built-in approver is not given them: it would let one agent take another's node).
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: agentBootstrapper},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:node-bootstrapper"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: AgentGroup}},
	}
	if err := createOrUpdate(ctx, crb, rbac.ClusterRoleBindings().Create, rbac.ClusterRoleBindings().Update); err != nil {
		return err
	}
	servers := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: APIServersReader, Namespace: metav1.NamespaceDefault},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"},
			ResourceNames: []string{"kubernetes"}, Verbs: []string{"get"},
		}},
	}
	if err := createOrUpdate(ctx, servers, rbac.Roles(servers.Namespace).Create, rbac.Roles(servers.Namespace).Update); err != nil {
		return err
	}
	serversBinding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: APIServersReader, Namespace: metav1.NamespaceDefault},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: APIServersReader},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "system:nodes"}},
	}
	return createOrUpdate(ctx, serversBinding, rbac.RoleBindings(serversBinding.Namespace).Create, rbac.RoleBindings(serversBinding.Namespace).Update)
}

// createOrUpdate creates obj, or replaces what an earlier start wrote.
func createOrUpdate[T interface{ GetName() string }](ctx context.Context, obj T,
	create func(context.Context, T, metav1.CreateOptions) (T, error),
	update func(context.Context, T, metav1.UpdateOptions) (T, error)) error {
	if _, err := create(ctx, obj, metav1.CreateOptions{}); err == nil || !apierrors.IsAlreadyExists(err) {
		if err != nil {
			return fmt.Errorf("creating %s: %w", obj.GetName(), err)
		}
		return nil
	}
	if _, err := update(ctx, obj, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating %s: %w", obj.GetName(), err)
	}
	return nil
}

// Service keeps the cluster joinable and decides agents' certificate requests: a part of
// gantry server.
type Service struct {
	// Elect, when set, runs the approver while this server is the elected one of a cluster
	// (internal/leaderelect): two approvers deciding at once could each give one node name to
	// a different key. Nil runs it here (a single server).
	Elect func(ctx context.Context, run func(ctx context.Context) error) error

	client   kubernetes.Interface
	opts     EnsureOptions
	approver *Approver
	log      *slog.Logger
	ready    chan struct{}
}

// NewService returns the join service acting through client (Gantry's identity).
func NewService(client kubernetes.Interface, opts EnsureOptions, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{client: client, opts: opts, approver: NewApprover(client, log), log: log.With("component", "join"), ready: make(chan struct{})}
}

// Ready is closed once the token is in place.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Start writes the token and what goes with it, says how to join, and approves until ctx ends.
func (s *Service) Start(ctx context.Context) error {
	var err error
	for range 30 { // the API server's RBAC may lag its readiness a moment after a first start
		if _, err = Ensure(ctx, s.client, s.opts); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	if err != nil {
		return err
	}
	s.log.Info("agents join with", "command", strings.Join(append([]string{"gantry agent --server " + s.opts.Server + " --token-file " + s.opts.TokenFile}, s.opts.AgentFlags...), " "))
	if s.opts.ServerTokenFile != "" {
		s.log.Info("servers join with", "command", "gantry server --server "+s.opts.Server+" --token-file "+s.opts.ServerTokenFile)
	}
	close(s.ready)
	if s.Elect != nil {
		return s.Elect(ctx, s.approver.Start)
	}
	return s.approver.Start(ctx)
}
