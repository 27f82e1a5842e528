package gateway

import (
	"net"
	"time"

	"github.com/gantry-run/gantry/internal/connpass"
	"github.com/gantry-run/gantry/internal/forwarded"
	"github.com/gantry-run/gantry/internal/h1proxy"
)

// FastRevisions is a Revisions that serves the fast path's requests too (internal/h1proxy):
// the activator's ServeFast. It fills f, or makes it reply, and returns true; false leaves the
// request to ServeRevision.
type FastRevisions interface {
	ServeFast(r *h1proxy.Request, namespace, name string, f *h1proxy.Forward) bool
}

// PassRevisions are revisions whose pods client connections may be passed to: the
// activator.
type PassRevisions interface {
	// PassTarget is the address of the pod a connection for the revision may be passed to.
	PassTarget(namespace, name string) (string, bool)
	// RecordPassed counts a request served on a passed connection.
	RecordPassed(namespace, name string, status int, d time.Duration)
}

// fastRoute routes a listener's plain HTTP/1.1 requests as serveHTTP does. It declines (and
// serveHTTP answers) the rest: unknown hosts (404, the console), the trace relay, and what the
// revisions leave to ServeRevision.
type fastRoute struct {
	g    *Gateway
	l    Listener
	revs FastRevisions
}

// fastPath is the fast path of listener l, nil when it has none: a listener with a handler
// of its own, a gateway that traces, revisions that cannot serve without waiting.
func (g *Gateway) fastPath(l Listener) *fastRoute {
	revs, ok := g.opts.Revisions.(FastRevisions)
	if !ok || l.Handler != nil || g.opts.Tracer != nil {
		return nil
	}
	return &fastRoute{g: g, l: l, revs: revs}
}

func (fr *fastRoute) Route(r *h1proxy.Request, f *h1proxy.Forward) bool {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	fromPods := fr.l.fromPodsAddr(r.RemoteAddr)
	rule := fr.g.table.Load().lookup(host, fromPods)
	if rule == nil {
		return false
	}
	path, split := rule.choose(r, roll())
	if split == nil || !fr.revs.ServeFast(r, split.ServiceNamespace, split.ServiceName, f) {
		return false
	}
	for k, v := range path.AppendHeaders {
		f.Set(k, v)
	}
	for k, v := range split.AppendHeaders {
		f.Set(k, v)
	}
	xff, fwd := forwarded.Values(r.RemoteAddr, r.Host, r.Values("X-Forwarded-For"), r.Values("Forwarded"))
	f.Set("X-Forwarded-For", xff)
	f.Set("X-Forwarded-Proto", "http")
	f.Set("Forwarded", fwd)
	f.Set("K-Original-Host", r.Host)
	return true
}

// passer is srv's Pass: it passes a connection whose request goes, as every request for its
// Host does, to one revision (one path, one split, no header to match), when the revisions
// choose a pod for it.
func (fr *fastRoute) passer(srv *h1proxy.Server) func(*h1proxy.Request, net.Conn, []byte) bool {
	pr, ok := fr.revs.(PassRevisions)
	if fr.g.opts.Passer == nil || !ok {
		return nil
	}
	return func(r *h1proxy.Request, nc net.Conn, buffered []byte) bool {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		rule := fr.g.table.Load().lookup(host, fr.l.fromPodsAddr(r.RemoteAddr))
		if rule == nil || len(rule.paths) != 1 {
			return false
		}
		path := &rule.paths[0]
		if len(path.Headers) != 0 || len(path.Splits) != 1 {
			return false
		}
		split := &path.Splits[0]
		ns, name := split.ServiceNamespace, split.ServiceName
		addr, ok := pr.PassTarget(ns, name)
		if !ok {
			return false
		}
		// The fields in the order the fast path sets them.
		set := make([][2]string, 0, len(path.AppendHeaders)+len(split.AppendHeaders))
		for k, v := range path.AppendHeaders {
			set = append(set, [2]string{k, v})
		}
		for k, v := range split.AppendHeaders {
			set = append(set, [2]string{k, v})
		}
		return fr.g.opts.Passer.Pass(addr, nc, r.Host, r.RemoteAddr, set, buffered, connpass.Back{
			Server: srv,
			Served: func(status int, d time.Duration) { pr.RecordPassed(ns, name, status, d) },
		})
	}
}
