// Package apiservers reads where a cluster's API servers are: the EndpointSlice "kubernetes"
// in default, in which every kube-apiserver lists its advertise address (and from which a
// server drops 15 s after it stops renewing its lease in etcd), as k3s's agents read the
// kubernetes Endpoints. Agents feed the list to their load balancer; servers keep it in
// <data-dir>/api-servers, where gantry kubectl finds other servers when its own is down.
package apiservers

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gantry-run/gantry/internal/atomicfile"
)

// SliceName is the EndpointSlice, in default, of the kubernetes Service.
const SliceName = "kubernetes"

// FileName is the file in a server's data dir that holds the servers it last read, one
// host:port a line.
const FileName = "api-servers"

// Interval is how often the list is read: the API servers rewrite it every 10 s.
const Interval = 10 * time.Second

// FromSlice are the host:port addresses of the API servers a kubernetes EndpointSlice lists:
// the ready endpoints' addresses (a missing condition counts as ready) on the port named
// https, else the slice's first port. A slice without a port lists none.
func FromSlice(slice *discoveryv1.EndpointSlice) []string {
	var port int32
	for _, p := range slice.Ports {
		if p.Port == nil {
			continue
		}
		if port == 0 || (p.Name != nil && *p.Name == "https") {
			port = *p.Port
		}
	}
	if port == 0 {
		return nil
	}
	var out []string
	for _, e := range slice.Endpoints {
		if e.Conditions.Ready != nil && !*e.Conditions.Ready {
			continue
		}
		for _, a := range e.Addresses {
			if net.ParseIP(a) == nil {
				continue
			}
			out = append(out, net.JoinHostPort(a, strconv.Itoa(int(port))))
		}
	}
	return out
}

// Get reads the list once, within Interval.
func Get(ctx context.Context, client kubernetes.Interface) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, Interval)
	defer cancel()
	slice, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Get(ctx, SliceName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading the API servers' EndpointSlice default/%s: %w", SliceName, err)
	}
	return FromSlice(slice), nil
}

// Follow reads the list now and every Interval until ctx ends, and calls update with each
// list that is not empty. A failure is logged once until a read works again; update is not
// called then, so what was known stays in use.
func Follow(ctx context.Context, client kubernetes.Interface, log *slog.Logger, update func([]string)) {
	t := time.NewTicker(Interval)
	defer t.Stop()
	failing := false
	for {
		servers, err := Get(ctx, client)
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				log.Warn("the API servers' list", "err", err)
			}
			failing = true
		case err == nil:
			failing = false
			if len(servers) > 0 {
				update(servers)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Cache keeps the list in a file (a server's <data-dir>/api-servers).
type Cache struct {
	Client kubernetes.Interface
	Path   string
	Log    *slog.Logger
}

// Start follows the list and writes each new one to Path until ctx ends.
func (c *Cache) Start(ctx context.Context) error {
	var last []string
	Follow(ctx, c.Client, c.Log, func(servers []string) {
		if slices.Equal(servers, last) {
			return
		}
		if err := WriteFile(c.Path, servers); err != nil {
			c.Log.Warn("writing the API servers' list", "path", c.Path, "err", err)
			return
		}
		last = servers
	})
	return nil
}

// WriteFile writes servers to path, one a line.
func WriteFile(path string, servers []string) error {
	return atomicfile.Write(path, []byte(strings.Join(servers, "\n")+"\n"), 0o644)
}

// ReadFile reads a list WriteFile wrote; a missing file is an empty list. Lines that are not
// host:port are skipped.
func ReadFile(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if _, port, err := net.SplitHostPort(line); err == nil && port != "" {
			out = append(out, line)
		}
	}
	return out, nil
}
