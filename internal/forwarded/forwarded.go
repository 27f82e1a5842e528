// Package forwarded holds what Gantry's ingress adds to each request about its client, as
// Knative's ingress does. The gateway adds it, and so does a queue-proxy that serves a
// client connection the gateway passed to it (internal/connpass), so the app sees the same
// either way.
package forwarded

import (
	"net"
	"strings"
)

// Values are the X-Forwarded-For and Forwarded values of a request from remote (host:port)
// for host, which came with the values priorXFF and priorFwd: the client is appended to
// each.
func Values(remote, host string, priorXFF, priorFwd []string) (xff, fwd string) {
	client, _, err := net.SplitHostPort(remote)
	if err != nil {
		client = remote
	}
	xff = client
	if len(priorXFF) > 0 {
		xff = strings.Join(priorXFF, ", ") + ", " + client
	}
	forNode := client
	if strings.Contains(client, ":") {
		forNode = `"[` + client + `]"`
	}
	fwd = "for=" + forNode + ";host=" + quoteIfNeeded(host) + ";proto=http"
	if len(priorFwd) > 0 {
		fwd = strings.Join(priorFwd, ", ") + ", " + fwd
	}
	return xff, fwd
}

// quoteIfNeeded quotes a Forwarded value that is not a plain token (a host with a port is not).
func quoteIfNeeded(v string) string {
	if strings.ContainsAny(v, ":[]\" ") {
		return `"` + strings.ReplaceAll(v, `"`, `\"`) + `"`
	}
	return v
}
