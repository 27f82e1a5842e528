package image

import (
	"fmt"
	"net"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// ParseReference parses an image reference as Kubernetes does: a missing tag means
// "latest". Registries on loopback (127.0.0.1:5000,
// localhost:5000, [::1]:5000 …) are reached over plain HTTP, as the embedded registry
// serves; every other registry needs HTTPS.
func ParseReference(s string) (name.Reference, error) {
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("parsing image reference %q: %w", s, err)
	}
	if !IsLoopbackRegistry(ref.Context().RegistryStr()) {
		return ref, nil
	}
	ref, err = name.ParseReference(s, name.Insecure)
	if err != nil {
		return nil, fmt.Errorf("parsing image reference %q: %w", s, err)
	}
	return ref, nil
}

// IsLoopbackRegistry reports whether a registry host (host or host:port) is on loopback.
func IsLoopbackRegistry(registry string) bool {
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}
