package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// DefaultResolvConf is where the host's resolvers are read from.
const DefaultResolvConf = "/etc/resolv.conf"

// Bounds of forwarding.
const (
	// upstreamTimeout bounds one exchange with one upstream server.
	upstreamTimeout = 2 * time.Second
	// recheckEvery is how often the resolver configuration's modification time is checked.
	recheckEvery = 2 * time.Second
	// upstreamUDPSize is the EDNS buffer size offered upstream (the DNS flag day's 1232).
	upstreamUDPSize = 1232
)

// ErrNoUpstream means the host names no resolver to forward to.
var ErrNoUpstream = errors.New("the host's resolver configuration names no nameserver")

// forwarder sends the questions outside the cluster domain to the host's resolvers, the
// nameservers of its resolv.conf, in order. The server runs in the host's network namespace,
// so a loopback stub such as systemd-resolved's 127.0.0.53 is reachable and used as it is:
// it keeps the host's own split DNS and caching. The file is re-read when it changes (a
// laptop that moves between networks).
type forwarder struct {
	path string
	// port is the upstream servers' port ("53"); tests point it elsewhere.
	port string
	// self is the server's own address (host:port), never forwarded to: a host whose
	// resolv.conf names the pods' DNS server would loop.
	self string

	mu      sync.Mutex
	servers []string
	modTime time.Time
	checked time.Time
}

func newForwarder(path, self string) *forwarder {
	if path == "" {
		path = DefaultResolvConf
	}
	return &forwarder{path: path, port: "53", self: self}
}

// upstreams are the servers (host:port) to forward to, read from the resolver configuration
// when it changed since the last look.
func (f *forwarder) upstreams(now time.Time) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if now.Sub(f.checked) < recheckEvery && !f.checked.IsZero() {
		return f.servers
	}
	f.checked = now
	fi, err := os.Stat(f.path)
	if err != nil {
		f.servers, f.modTime = nil, time.Time{}
		return nil
	}
	if fi.ModTime().Equal(f.modTime) && f.servers != nil {
		return f.servers
	}
	f.modTime = fi.ModTime()
	cfg, err := mdns.ClientConfigFromFile(f.path)
	if err != nil {
		f.servers = nil
		return nil
	}
	var servers []string
	for _, s := range cfg.Servers {
		addr := net.JoinHostPort(s, f.port)
		if addr == f.self || slices.Contains(servers, addr) {
			continue
		}
		servers = append(servers, addr)
	}
	f.servers = servers
	return servers
}

// exchange asks the upstream servers in turn until one answers; a truncated UDP answer is
// asked again over TCP. ctx bounds the whole, upstreamTimeout each exchange.
func (f *forwarder) exchange(ctx context.Context, req *mdns.Msg, tcp bool) (*mdns.Msg, error) {
	servers := f.upstreams(time.Now())
	if len(servers) == 0 {
		return nil, fmt.Errorf("%s: %w", f.path, ErrNoUpstream)
	}
	m := req.Copy()
	m.Id = mdns.Id()
	if opt := m.IsEdns0(); opt != nil {
		opt.SetUDPSize(upstreamUDPSize)
	} else {
		m.SetEdns0(upstreamUDPSize, false)
	}
	var errs []error
	for _, server := range servers {
		proto := "udp"
		if tcp {
			proto = "tcp"
		}
		resp, err := f.ask(ctx, m, server, proto)
		if err == nil && resp.Truncated && proto == "udp" {
			resp, err = f.ask(ctx, m, server, "tcp")
		}
		if err == nil {
			resp.Id = req.Id
			return resp, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", server, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("forwarding %s: %w", req.Question[0].Name, errors.Join(errs...))
}

func (f *forwarder) ask(ctx context.Context, m *mdns.Msg, server, proto string) (*mdns.Msg, error) {
	c := &mdns.Client{Net: proto, Timeout: upstreamTimeout, UDPSize: upstreamUDPSize}
	resp, _, err := c.ExchangeContext(ctx, m, server)
	if err != nil {
		return nil, err
	}
	if resp.Id != m.Id {
		return nil, errors.New("answer with another message id")
	}
	return resp, nil
}
