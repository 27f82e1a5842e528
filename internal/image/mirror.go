package image

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Bounds of a mirror's requests: a server that is down costs one dial, not a pull's timeout.
const (
	mirrorDialTimeout      = 3 * time.Second
	mirrorHandshakeTimeout = 10 * time.Second
	mirrorHeaderTimeout    = 30 * time.Second
)

// Mirror is a node's way to the servers' embedded registry, as containerd's registry mirrors
// are (k3s's registries.yaml): an http.RoundTripper that sends every request for one registry
// host, the one pods' image references name (the server's --registry-addr, on the server's
// loopback), to the servers' registry for nodes (NodeAccess) instead, over TLS with the
// node's client certificate; requests for any other registry go to Base untouched.
//
// It tries the servers in order, starting with the one that answered last: a server that
// cannot be reached, or answers 5xx, or has not got the manifest or blob (404: each server of
// a cluster keeps its own registry), is passed over for the next. After every server, the
// registry host itself, in plain HTTP as the embedded registry serves: an agent on the
// server's machine reaches it on loopback, like the server's own node. Only reads are
// mirrored: a push through a mirror is refused here (images are pushed on the server).
type Mirror struct {
	// Registry is the host:port image references name, e.g. 127.0.0.1:5000.
	Registry string
	// Endpoints lists the servers' registries for nodes (host:port), in order; it is called
	// for each request, so it may follow the cluster's servers.
	Endpoints func() []string
	// TLS is the client's configuration: the cluster CA in RootCAs, the node's certificate.
	TLS *tls.Config
	// Base carries every other request and the last try at Registry itself; nil means
	// http.DefaultTransport.
	Base http.RoundTripper

	once sync.Once
	tr   *http.Transport
	mu   sync.Mutex
	last string // the endpoint that answered last
}

// ErrMirrorPush is returned for a request through a mirror that is not a read.
var ErrMirrorPush = errors.New("nodes only read the server's registry: push images on the server")

func (m *Mirror) transport() *http.Transport {
	m.once.Do(func() {
		d := &net.Dialer{Timeout: mirrorDialTimeout, KeepAlive: 30 * time.Second}
		m.tr = &http.Transport{
			DialContext:           d.DialContext,
			TLSClientConfig:       m.TLS.Clone(),
			TLSHandshakeTimeout:   mirrorHandshakeTimeout,
			ResponseHeaderTimeout: mirrorHeaderTimeout,
			ForceAttemptHTTP2:     true,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
		}
	})
	return m.tr
}

func (m *Mirror) base() http.RoundTripper {
	if m.Base != nil {
		return m.Base
	}
	return http.DefaultTransport
}

// Mirrors reports whether requests for host (host:port) go to the mirrors.
func (m *Mirror) Mirrors(host string) bool { return strings.EqualFold(host, m.Registry) }

// order is the endpoints in the order to try them: the one that answered last first.
func (m *Mirror) order() []string {
	eps := m.Endpoints()
	m.mu.Lock()
	last := m.last
	m.mu.Unlock()
	out := make([]string, 0, len(eps))
	for _, e := range eps {
		if e == last {
			out = append(out, e)
		}
	}
	for _, e := range eps {
		if e != last {
			out = append(out, e)
		}
	}
	return out
}

// RoundTrip implements http.RoundTripper.
func (m *Mirror) RoundTrip(req *http.Request) (*http.Response, error) {
	if !m.Mirrors(req.URL.Host) {
		return m.base().RoundTrip(req)
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), ErrMirrorPush)
	}
	var errs []error
	var notFound *http.Response
	keep := func(resp *http.Response) {
		if notFound == nil {
			notFound = resp
			return
		}
		drainClose(resp.Body)
	}
	var eps []string
	if m.Endpoints != nil {
		eps = m.order()
	}
	for _, ep := range eps {
		out := req.Clone(req.Context())
		out.URL.Scheme, out.URL.Host, out.Host = "https", ep, ep
		resp, err := m.transport().RoundTrip(out)
		if err != nil {
			errs = append(errs, fmt.Errorf("the server's registry at %s: %w", ep, err))
			continue
		}
		switch {
		case resp.StatusCode == http.StatusNotFound:
			keep(resp)
			continue
		case resp.StatusCode >= 500:
			errs = append(errs, fmt.Errorf("the server's registry at %s: %s", ep, resp.Status))
			drainClose(resp.Body)
			continue
		}
		m.mu.Lock()
		m.last = ep
		m.mu.Unlock()
		if notFound != nil {
			drainClose(notFound.Body)
		}
		resp.Request = req
		return resp, nil
	}
	// The registry host itself: on this machine, in plain HTTP, as the embedded one serves.
	direct := req.Clone(req.Context())
	if IsLoopbackRegistry(m.Registry) {
		direct.URL.Scheme = "http"
	}
	resp, err := m.base().RoundTrip(direct)
	if err == nil && (resp.StatusCode != http.StatusNotFound || notFound == nil) {
		if notFound != nil {
			drainClose(notFound.Body)
		}
		resp.Request = req
		return resp, nil
	}
	if err == nil {
		drainClose(resp.Body)
	}
	if notFound != nil {
		notFound.Request = req
		return notFound, nil
	}
	errs = append(errs, fmt.Errorf("%s on this machine: %w", m.Registry, err))
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return nil, fmt.Errorf("no registry for %s answers: %s", m.Registry, strings.Join(msgs, "; "))
}

// CloseIdleConnections closes the mirrors' idle connections.
func (m *Mirror) CloseIdleConnections() { m.transport().CloseIdleConnections() }

func drainClose(b io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(b, 64<<10))
	_ = b.Close()
}
