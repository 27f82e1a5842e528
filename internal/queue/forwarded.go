package queue

import (
	"net"
	"net/http"
	"strings"
)

// forwardedHandler gives every request an RFC 7239 Forwarded header, as Knative's
// queue-proxy does: a request that has one keeps it untouched; one that has only
// X-Forwarded-For/-Host/-Proto gets a Forwarded header built from them. The proxy then
// appends the peer's address to X-Forwarded-For (proxyForwardedFor). The client's other
// headers pass unchanged.
func forwardedHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.Header["Forwarded"]; !ok {
			if fwd := forwardedFromX(r.Header); fwd != "" {
				r.Header["Forwarded"] = []string{fwd}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// forwardedFromX builds a Forwarded value from the X-Forwarded-* headers: the first element
// carries the first hop's for=, host= and proto=, and each further X-Forwarded-For hop adds
// an element with its for=. It is empty when there is nothing to build from.
func forwardedFromX(h http.Header) string {
	return forwardedFrom(h.Get("X-Forwarded-For"), h.Get("X-Forwarded-Host"), h.Get("X-Forwarded-Proto"))
}

// forwardedFrom is forwardedFromX of the first X-Forwarded-For, -Host and -Proto values.
func forwardedFrom(xff, xfh, xfp string) string {
	if xff == "" && xfh == "" && xfp == "" {
		return ""
	}
	var b strings.Builder
	b.Grow(len(xff) + len(xfh) + len(xfp) + 32)
	var hops []string
	if xff != "" {
		hops = strings.Split(xff, ",")
	}
	var params []string
	if len(hops) > 0 {
		params = append(params, "for="+forwardedNode(strings.TrimSpace(hops[0])))
	}
	if xfh != "" {
		params = append(params, "host="+xfh)
	}
	if xfp != "" {
		params = append(params, "proto="+xfp)
	}
	b.WriteString(strings.Join(params, ";"))
	for _, hop := range hops[min(1, len(hops)):] {
		b.WriteString(", for=")
		b.WriteString(forwardedNode(strings.TrimSpace(hop)))
	}
	return b.String()
}

// forwardedNode quotes an IPv6 address as RFC 7239 requires: "[2001:db8::1]".
func forwardedNode(node string) string {
	if strings.Contains(node, ":") {
		return `"[` + node + `]"`
	}
	return node
}

// proxyForwardedFor is the X-Forwarded-For the user container sees: the client's, with the
// address of the peer that sent the request appended (what a Go reverse proxy does by
// default).
func proxyForwardedFor(in *http.Request) []string {
	if v, ok := appendForwardedFor(in.Header["X-Forwarded-For"], in.RemoteAddr); ok {
		return []string{v}
	}
	return in.Header["X-Forwarded-For"]
}

// appendForwardedFor joins the X-Forwarded-For values prior and the address of the peer
// remote (host:port); false when remote is not one.
func appendForwardedFor(prior []string, remote string) (string, bool) {
	ip, _, err := net.SplitHostPort(remote)
	if err != nil {
		return "", false
	}
	if len(prior) > 0 {
		ip = strings.Join(prior, ", ") + ", " + ip
	}
	return ip, true
}
