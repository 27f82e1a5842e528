package gateway

import (
	"net"

	"github.com/gantry-run/gantry/internal/h1proxy"
)

// FastRevisions is a Revisions that serves the fast path's requests too (internal/h1proxy):
// the activator's ServeFast. It fills f, or makes it reply, and returns true; false leaves the
// request to ServeRevision.
type FastRevisions interface {
	ServeFast(r *h1proxy.Request, namespace, name string, f *h1proxy.Forward) bool
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
	xff, fwd := forwardedValues(r.RemoteAddr, r.Host, r.Values("X-Forwarded-For"), r.Values("Forwarded"))
	f.Set("X-Forwarded-For", xff)
	f.Set("X-Forwarded-Proto", "http")
	f.Set("Forwarded", fwd)
	f.Set("K-Original-Host", r.Host)
	return true
}
