package image

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/net/netutil"
)

// DefaultNodeAccessPort is where gantry server lets nodes read its embedded registry (HTTPS on
// its --bind-address): beside the API server's 6443 and the webhook's 6444.
const DefaultNodeAccessPort = 6445

// The identity of a node's client certificate, as the Node authorizer reads it.
const (
	NodesGroup = "system:nodes"
	NodePrefix = "system:node:"
)

// Bounds of the nodes' endpoint.
const (
	// nodeAccessMaxConns bounds its open connections: a few per node pulling.
	nodeAccessMaxConns = 256
	// A blob of gigabytes takes a while on a slow link: the write timeout is the registry's.
	nodeAccessReadHeaderTimeout = 10 * time.Second
	nodeAccessWriteTimeout      = 15 * time.Minute
	nodeAccessIdleTimeout       = 2 * time.Minute
	nodeAccessShutdownTimeout   = 5 * time.Second
)

// NodeAccessOptions configure the nodes' way to the embedded registry.
type NodeAccessOptions struct {
	// Addr is where it listens (host:port): the server's --bind-address and a port of its own.
	Addr string
	// Cert is the serving certificate (the API server's: it covers the addresses agents reach
	// the server at); ClientCAs verify the clients' certificates (the cluster CA).
	Cert      tls.Certificate
	ClientCAs *x509.CertPool
	Logger    *slog.Logger
}

// NodeAccess serves the embedded registry to the cluster's nodes over the network, read only:
// the registry itself listens on loopback in plain HTTP for the server's own pushes and pulls,
// and an agent on another machine pulls the same images here instead.
//
// Only a node may read, as only a node may run pods: the TLS handshake asks for a client
// certificate of the cluster CA, and a request is served only when that certificate is a
// node's (system:node:<name> in system:nodes, which agents get when they join). So a pod, a
// machine on the network, or another client of the cluster gets nothing: no certificate fails
// the handshake, and one that is not a node's gets 403. What is served is what a pull needs
// (GET and HEAD of /v2/, of a manifest and of a blob); a push, a tag list and the catalog are
// refused: images are pushed on the server.
type NodeAccess struct {
	reg  *Registry
	opts NodeAccessOptions
	log  *slog.Logger
	ln   net.Listener
}

// NewNodeAccess checks opts and binds the address (a port in use fails here, by name).
func (r *Registry) NewNodeAccess(opts NodeAccessOptions) (*NodeAccess, error) {
	if opts.ClientCAs == nil || len(opts.Cert.Certificate) == 0 {
		return nil, errors.New("registry for nodes: a serving certificate and the clients' CA are needed")
	}
	if opts.Logger == nil {
		opts.Logger = r.log
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("registry for nodes: listening on %s: %w", opts.Addr, err)
	}
	return &NodeAccess{reg: r, opts: opts, log: opts.Logger.With("component", "registry-nodes"), ln: ln}, nil
}

// Addr is the address it listens on.
func (n *NodeAccess) Addr() string { return n.ln.Addr().String() }

// TLSConfig is the endpoint's: the serving certificate, and a client certificate of the CA
// required in the handshake.
func (n *NodeAccess) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{n.opts.Cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    n.opts.ClientCAs,
		NextProtos:   []string{"h2", "http/1.1"},
	}
}

// Handler is the endpoint's HTTP handler, behind the TLS handshake.
func (n *NodeAccess) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		node, ok := nodeOf(req.TLS)
		if !ok {
			writeRegError(w, http.StatusForbidden, "DENIED", "only the cluster's nodes may read the registry here (a node's client certificate, system:node:<name> in system:nodes)")
			return
		}
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeRegError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "nodes only read the registry here; push images on the server, to "+n.reg.opts.Addr)
			return
		}
		if err := readPath(req.URL.Path); err != nil {
			writeRegError(w, http.StatusForbidden, "DENIED", err.Error())
			return
		}
		n.log.Debug("node read", "node", node, "method", req.Method, "path", req.URL.Path)
		req.Body = http.NoBody
		n.reg.inner.ServeHTTP(w, req)
	})
}

// nodeOf is the node name of a verified client certificate of a node.
func nodeOf(cs *tls.ConnectionState) (string, bool) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return "", false
	}
	c := cs.PeerCertificates[0]
	name, ok := strings.CutPrefix(c.Subject.CommonName, NodePrefix)
	if !ok || name == "" || !slices.Contains(c.Subject.Organization, NodesGroup) {
		return "", false
	}
	return name, true
}

// readPath checks that p is what a pull reads: /v2/, a manifest, or a blob by digest.
func readPath(p string) error {
	if p == "/v2/" || p == "/v2" {
		return nil
	}
	if repo, target, ok := manifestPath(p); ok {
		return validRef(repo, target)
	}
	elem := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(elem) >= 4 && elem[0] == "v2" && elem[len(elem)-2] == "blobs" {
		repo := strings.Join(elem[1:len(elem)-2], "/")
		if _, err := v1.NewHash(elem[len(elem)-1]); err != nil {
			return fmt.Errorf("invalid digest %q", elem[len(elem)-1])
		}
		return validRef(repo, "latest")
	}
	return fmt.Errorf("%s: nodes read manifests and blobs here, nothing else", p)
}

// Start serves once the registry does, until ctx ends.
func (n *NodeAccess) Start(ctx context.Context) error {
	select {
	case <-n.reg.Ready():
	case <-ctx.Done():
		return n.ln.Close()
	}
	srv := &http.Server{
		Handler:           n.Handler(),
		ReadHeaderTimeout: nodeAccessReadHeaderTimeout,
		WriteTimeout:      nodeAccessWriteTimeout,
		IdleTimeout:       nodeAccessIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
		TLSConfig:         n.TLSConfig(),
	}
	errc := make(chan error, 1)
	go func() {
		if err := srv.ServeTLS(netutil.LimitListener(n.ln, nodeAccessMaxConns), "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("registry for nodes on %s: %w", n.ln.Addr(), err)
		}
		close(errc)
	}()
	n.log.Info("registry serving nodes", "addr", n.ln.Addr().String())
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), nodeAccessShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(stop); err != nil {
		_ = srv.Close()
	}
	return nil
}
