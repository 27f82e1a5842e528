package join

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// NodeIdentityPrefix names the Secret in kube-system that binds a node name to the key of the
// agent that first claimed it: NodeIdentityPrefix + node name. Deleting it gives the name to
// the next agent that asks.
const NodeIdentityPrefix = "gantry-node-identity."

const identityKey = "publicKeySHA256"

// The groups and prefix of a node's identity.
const (
	nodesGroup = "system:nodes"
	nodePrefix = "system:node:"
)

// Approver decides the certificate requests of agents: a node's client certificate asked with
// the join token (or by the node itself, to renew), and a node's kubelet serving certificate
// asked by that node. Other requests are left to others.
type Approver struct {
	client kubernetes.Interface
	log    *slog.Logger
}

// NewApprover returns an approver acting through client (Gantry's own identity).
func NewApprover(client kubernetes.Interface, log *slog.Logger) *Approver {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Approver{client: client, log: log.With("component", "join")}
}

// Start decides requests until ctx ends.
func (a *Approver) Start(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(a.client, 0)
	inf := factory.Certificates().V1().CertificateSigningRequests().Informer()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	defer queue.ShutDown()
	enqueue := func(obj any) {
		if csr, ok := obj.(*certificatesv1.CertificateSigningRequest); ok && undecided(csr) {
			queue.Add(csr.Name)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) }}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return ctx.Err()
	}
	go func() {
		<-ctx.Done()
		queue.ShutDown()
	}()
	for {
		name, quit := queue.Get()
		if quit {
			return nil
		}
		obj, exists, err := inf.GetStore().GetByKey(name)
		if err == nil && exists {
			err = a.decide(ctx, obj.(*certificatesv1.CertificateSigningRequest))
		}
		if err != nil && ctx.Err() == nil {
			a.log.Warn("deciding a certificate request", "csr", name, "err", err)
			queue.AddRateLimited(name)
		} else {
			queue.Forget(name)
		}
		queue.Done(name)
	}
}

func undecided(csr *certificatesv1.CertificateSigningRequest) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == certificatesv1.CertificateApproved || c.Type == certificatesv1.CertificateDenied || c.Type == certificatesv1.CertificateFailed {
			return false
		}
	}
	return true
}

// decide approves or denies csr, or leaves it when it is not an agent's.
func (a *Approver) decide(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) error {
	var node string
	var err error
	switch csr.Spec.SignerName {
	case certificatesv1.KubeAPIServerClientKubeletSignerName:
		if !slices.Contains(csr.Spec.Groups, AgentGroup) && !strings.HasPrefix(csr.Spec.Username, nodePrefix) {
			return nil
		}
		node, err = a.checkClient(ctx, csr)
	case certificatesv1.KubeletServingSignerName:
		if !strings.HasPrefix(csr.Spec.Username, nodePrefix) {
			return nil
		}
		node, err = checkServing(csr)
	default:
		return nil
	}
	var refused *refusal
	switch {
	case errors.As(err, &refused):
		a.log.Warn("denied a certificate request", "csr", csr.Name, "node", node, "reason", refused.msg)
		return a.set(ctx, csr, certificatesv1.CertificateDenied, "GantryDenied", refused.msg)
	case err != nil:
		return err
	}
	a.log.Info("approved a certificate request", "csr", csr.Name, "node", node, "signer", csr.Spec.SignerName)
	return a.set(ctx, csr, certificatesv1.CertificateApproved, "GantryApproved", "an agent's request for its own node")
}

// refusal is a request Gantry denies, with the message the agent prints.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }

func refuse(format string, args ...any) error { return &refusal{fmt.Sprintf(format, args...)} }

func (a *Approver) set(ctx context.Context, csr *certificatesv1.CertificateSigningRequest, typ certificatesv1.RequestConditionType, reason, msg string) error {
	csr = csr.DeepCopy()
	csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: msg, LastUpdateTime: metav1.Now(),
	})
	_, err := a.client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{})
	return err
}

// parseNode reads the request's certificate request, checks its signature (the requester
// holds the key) and its subject, a node's: system:node:<name> in system:nodes.
func parseNode(csr *certificatesv1.CertificateSigningRequest) (*x509.CertificateRequest, string, error) {
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, "", refuse("the request holds no PEM certificate request")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, "", refuse("the certificate request does not parse: %v", err)
	}
	if err := req.CheckSignature(); err != nil {
		return nil, "", refuse("the certificate request's signature does not verify: %v", err)
	}
	name, ok := strings.CutPrefix(req.Subject.CommonName, nodePrefix)
	if !ok || name == "" {
		return nil, "", refuse("the common name %q is not system:node:<name>", req.Subject.CommonName)
	}
	if !slices.Equal(req.Subject.Organization, []string{nodesGroup}) {
		return nil, name, refuse("the organization %v is not [%s]", req.Subject.Organization, nodesGroup)
	}
	return req, name, nil
}

func onlyUsages(csr *certificatesv1.CertificateSigningRequest, allowed ...certificatesv1.KeyUsage) error {
	for _, u := range csr.Spec.Usages {
		if !slices.Contains(allowed, u) {
			return refuse("the usage %q is not one a node gets", u)
		}
	}
	return nil
}

// checkClient accepts a node's client certificate when the node name is free or already
// bound to this request's key; it binds a free name to the key.
func (a *Approver) checkClient(ctx context.Context, csr *certificatesv1.CertificateSigningRequest) (string, error) {
	req, node, err := parseNode(csr)
	if err != nil {
		return node, err
	}
	if len(req.DNSNames)+len(req.IPAddresses)+len(req.EmailAddresses)+len(req.URIs) > 0 {
		return node, refuse("a node's client certificate has no subject alternative names")
	}
	if err := onlyUsages(csr, certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageClientAuth); err != nil {
		return node, err
	}
	// A node renewing its own certificate must keep to its name.
	if user, ok := strings.CutPrefix(csr.Spec.Username, nodePrefix); ok && user != node {
		return node, refuse("node %s may not ask for node %s's certificate", user, node)
	}
	der, err := x509.MarshalPKIXPublicKey(req.PublicKey)
	if err != nil {
		return node, refuse("the public key: %v", err)
	}
	sum := sha256.Sum256(der)
	key := hex.EncodeToString(sum[:])
	secrets := a.client.CoreV1().Secrets(metav1.NamespaceSystem)
	name := NodeIdentityPrefix + node
	cur, err := secrets.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceSystem},
			Data:       map[string][]byte{identityKey: []byte(key), "claimedAt": []byte(time.Now().UTC().Format(time.RFC3339))},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return node, fmt.Errorf("node %s was claimed meanwhile: deciding again", node)
		}
		return node, err
	case err != nil:
		return node, err
	case string(cur.Data[identityKey]) != key:
		return node, refuse("node name %q belongs to another agent (its key differs); to give the name to this machine, delete the Secret kube-system/%s", node, name)
	}
	return node, nil
}

// checkServing accepts a node's kubelet serving certificate asked by the node itself, for its
// own name, with names and addresses only.
func checkServing(csr *certificatesv1.CertificateSigningRequest) (string, error) {
	req, node, err := parseNode(csr)
	if err != nil {
		return node, err
	}
	if csr.Spec.Username != nodePrefix+node {
		return node, refuse("%s may not ask for node %s's serving certificate", csr.Spec.Username, node)
	}
	if len(req.EmailAddresses)+len(req.URIs) > 0 || len(req.DNSNames)+len(req.IPAddresses) == 0 {
		return node, refuse("a serving certificate names the node's addresses or host names, and nothing else")
	}
	for _, ip := range req.IPAddresses {
		if ip.IsUnspecified() || ip.IsMulticast() {
			return node, refuse("%s is not a node's address", ip)
		}
	}
	if err := onlyUsages(csr, certificatesv1.UsageDigitalSignature, certificatesv1.UsageKeyEncipherment, certificatesv1.UsageServerAuth); err != nil {
		return node, err
	}
	return node, nil
}
