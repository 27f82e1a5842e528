package node

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// How long the API server's answer about a caller is reused, as the kubelet's webhook
// authorizer caches it, but shorter: a revoked grant stops working within a minute.
const (
	accessAllowedTTL = time.Minute
	accessDeniedTTL  = 10 * time.Second
	// accessReviewTimeout bounds one SubjectAccessReview.
	accessReviewTimeout = 10 * time.Second
	// maxCachedDecisions bounds the cache; a full cache is emptied.
	maxCachedDecisions = 4096
)

// kubeletAccess is what a kubelet API request asks of the Node object, in the API server's
// terms: a verb on the subresources of resource "nodes", any one of which allows it.
type kubeletAccess struct {
	Verb         string
	Subresources []string
}

// streamingPaths run a command or open a connection in a pod: they change what runs there.
var streamingPaths = []string{"/exec", "/attach", "/portForward", "/run"}

// accessFor maps a request of the kubelet API to the access it needs, as the kubelet maps it
// (pkg/kubelet/server/auth.go): the verb from the HTTP method, and the subresource from the
// path: stats, metrics, log (node logs under /logs), checkpoint, statusz, configz (/configz,
// /flagz), pods (/pods, /runningPods) and healthz, the last two or proxy; everything else,
// the container logs among it, proxy.
//
// One difference: exec, attach, portForward and run need "create" whatever the method, where
// the kubelet asks "get" of a WebSocket upgrade (a GET); so a grant to read nodes/proxy
// never runs a command.
func accessFor(r *http.Request) kubeletAccess {
	verb := map[string]string{
		http.MethodPost: "create", http.MethodGet: "get", http.MethodHead: "get",
		http.MethodPut: "update", http.MethodPatch: "patch", http.MethodDelete: "delete",
	}[r.Method]
	path := r.URL.Path
	for _, p := range streamingPaths {
		if under(path, p) {
			return kubeletAccess{Verb: "create", Subresources: []string{"proxy"}}
		}
	}
	for _, m := range []struct {
		prefix, subresource string
		orProxy             bool
	}{
		{"/stats", "stats", false},
		{"/metrics", "metrics", false},
		{"/logs", "log", false},
		{"/checkpoint", "checkpoint", false},
		{"/statusz", "statusz", false},
		{"/flagz", "configz", false},
		{"/configz", "configz", true},
		{"/pods", "pods", true},
		{"/runningpods", "pods", true},
		{"/healthz", "healthz", true},
	} {
		if !under(path, m.prefix) {
			continue
		}
		subs := []string{m.subresource}
		if m.orProxy {
			subs = append(subs, "proxy")
		}
		return kubeletAccess{Verb: verb, Subresources: subs}
	}
	return kubeletAccess{Verb: verb, Subresources: []string{"proxy"}}
}

// under reports whether path is prefix or below it.
func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// caller is who sent a request: the subject of its client certificate.
type caller struct {
	User   string
	Groups []string
}

// certCaller is the caller a verified client certificate names, as the API server reads it:
// the common name is the user, the organisations the groups, and every caller is also in
// system:authenticated.
func certCaller(cert *x509.Certificate) caller {
	groups := slices.Clone(cert.Subject.Organization)
	if !slices.Contains(groups, authenticatedGroup) {
		groups = append(groups, authenticatedGroup)
	}
	return caller{User: cert.Subject.CommonName, Groups: groups}
}

// authenticatedGroup is the group of every authenticated user.
const authenticatedGroup = "system:authenticated"

func (c caller) key() string { return c.User + "\x00" + strings.Join(c.Groups, "\x00") }

// accessReviewer asks the API server whether a caller may do something to the node, with
// SubjectAccessReviews, and remembers the answers for a while.
type accessReviewer struct {
	client    kubernetes.Interface
	node      string
	clock     clock.PassiveClock
	decisions *ttlCache[bool]
}

func newAccessReviewer(client kubernetes.Interface, node string, clk clock.PassiveClock) *accessReviewer {
	return &accessReviewer{client: client, node: node, clock: clk, decisions: newTTLCache[bool](maxCachedDecisions)}
}

// allowed asks whether c may have a: allowed when any of its subresources is.
func (a *accessReviewer) allowed(ctx context.Context, c caller, access kubeletAccess) (bool, error) {
	for _, sub := range access.Subresources {
		ok, err := a.review(ctx, c, access.Verb, sub)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func (a *accessReviewer) review(ctx context.Context, c caller, verb, subresource string) (bool, error) {
	key := c.key() + "\x01" + verb + "\x01" + subresource
	now := a.clock.Now()
	if allowed, ok := a.decisions.get(key, now); ok {
		return allowed, nil
	}
	ctx, cancel := context.WithTimeout(ctx, accessReviewTimeout)
	defer cancel()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   c.User,
		Groups: c.Groups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: verb, Version: "v1", Resource: "nodes", Subresource: subresource, Name: a.node,
		},
	}}
	res, err := a.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("asking the API server whether %s may %s nodes/%s: %w", c.User, verb, subresource, err)
	}
	ttl := accessDeniedTTL
	if res.Status.Allowed {
		ttl = accessAllowedTTL
	}
	a.decisions.put(key, res.Status.Allowed, now.Add(ttl))
	return res.Status.Allowed, nil
}

// authorize lets through the requests whose caller the API server allows the access the
// request needs (accessFor), and answers the others 403, or 500 when the API server cannot
// say. The TLS listener has already checked the client certificate against the cluster CA.
func (n *Node) authorize(reviewer *accessReviewer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		c := certCaller(r.TLS.PeerCertificates[0])
		access := accessFor(r)
		ok, err := reviewer.allowed(r.Context(), c, access)
		if err != nil {
			n.log.Warn("kubelet API authorization", "user", c.User, "path", r.URL.Path, "err", err)
			http.Error(w, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=nodes, subresource(s)=%v)", c.User, access.Verb, access.Subresources),
				http.StatusInternalServerError)
			return
		}
		if !ok {
			http.Error(w, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource(s)=%v)", c.User, access.Verb, access.Subresources),
				http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
