// Package loadbalancer is an agent's way to the API servers of a cluster, as k3s's agents
// reach theirs (and gantry kubectl's when its own server is down): a TCP proxy on loopback
// that the clients use as their server. It tries the servers it was given, then those it
// learned (SetLearned).
// Each connection goes to the server in use while it accepts connections; when it does not,
// the proxy tries the others in order and keeps the first that does. TLS passes through
// untouched (the servers' certificates cover 127.0.0.1), so the clients still verify the
// cluster CA and present their own certificates. A connection open to a server that dies ends
// with it, and the client's next one goes to another server.
package loadbalancer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// DialTimeout bounds one attempt to reach a server.
const DialTimeout = 3 * time.Second

// LoadBalancer is a running proxy; New listens, Start serves.
type LoadBalancer struct {
	ln      net.Listener
	log     *slog.Logger
	mu      sync.Mutex
	given   []string // host:port of the URLs New was given, in order
	servers []string // host:port, in order: given, then learned (see Merge)
	current int
	conns   sync.WaitGroup
}

// New listens on 127.0.0.1 (a port the kernel picks) for the servers at urls (https://HOST:PORT).
func New(urls []string, log *slog.Logger) (*LoadBalancer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var servers []string
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("%q is not an https:// URL of a server", s)
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "443")
		}
		servers = append(servers, host)
	}
	if len(servers) == 0 {
		return nil, errors.New("no server")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	servers = Merge(servers, nil)
	return &LoadBalancer{ln: ln, log: log.With("component", "api-load-balancer"), given: servers, servers: servers}, nil
}

// Merge is the order the proxy tries servers in: those it was given, then those it learned
// that are not among them, each once. The given ones stay, as a fallback, even when the
// cluster no longer lists them, as k3s's agents keep the server they were started with.
func Merge(given, learned []string) []string {
	out := make([]string, 0, len(given)+len(learned))
	seen := make(map[string]bool, len(given)+len(learned))
	for _, list := range [][]string{given, learned} {
		for _, s := range list {
			if s != "" && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// SetLearned makes the servers the proxy tries those it was given, then learned (host:port,
// e.g. from the kubernetes EndpointSlice in default). The server in use stays in use while it
// is in the list. It returns whether the list changed.
func (lb *LoadBalancer) SetLearned(learned []string) bool {
	servers := Merge(lb.given, learned)
	lb.mu.Lock()
	defer lb.mu.Unlock()
	if slices.Equal(servers, lb.servers) {
		return false
	}
	inUse := lb.servers[lb.current]
	lb.servers = servers
	lb.current = max(slices.Index(servers, inUse), 0)
	lb.log.Info("servers", "servers", strings.Join(servers, ","), "in_use", servers[lb.current])
	return true
}

// Check dials the servers as a connection through the proxy would, and says why none takes a
// connection if none does (a client through the proxy sees only its connection closed).
func (lb *LoadBalancer) Check(ctx context.Context) error {
	conn, err := lb.dial(ctx)
	if err != nil {
		return fmt.Errorf("no server takes connections: %w", err)
	}
	return conn.Close()
}

// Servers is the list the proxy tries, in order.
func (lb *LoadBalancer) Servers() []string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return slices.Clone(lb.servers)
}

// URL is the servers' URL for the agent's clients: the proxy's address.
func (lb *LoadBalancer) URL() string { return "https://" + lb.ln.Addr().String() }

// Server is the address of the server in use.
func (lb *LoadBalancer) Server() string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.servers[lb.current]
}

// Start serves until ctx ends, then closes the listener and every connection through it.
func (lb *LoadBalancer) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		_ = lb.ln.Close()
	}()
	for {
		conn, err := lb.ln.Accept()
		if err != nil {
			lb.conns.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("api load balancer: %w", err)
		}
		lb.conns.Go(func() { lb.serve(ctx, conn) })
	}
}

// serve pipes conn to a server until either side ends or ctx does.
func (lb *LoadBalancer) serve(ctx context.Context, conn net.Conn) {
	defer func() { _ = conn.Close() }()
	backend, err := lb.dial(ctx)
	if err != nil {
		lb.log.Warn("no server reachable", "err", err)
		return
	}
	defer func() { _ = backend.Close() }()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		done <- struct{}{}
	}
	go pipe(backend, conn)
	go pipe(conn, backend)
	select {
	case <-done:
	case <-ctx.Done():
	}
	// Closing both (deferred) ends the other copy.
}

// dial reaches the server in use, else the next ones in order; the first that answers is
// then the one in use.
func (lb *LoadBalancer) dial(ctx context.Context) (net.Conn, error) {
	lb.mu.Lock()
	start, servers := lb.current, lb.servers
	lb.mu.Unlock()
	d := net.Dialer{Timeout: DialTimeout}
	var errs []error
	for i := range servers {
		n := (start + i) % len(servers)
		conn, err := d.DialContext(ctx, "tcp", servers[n])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if n != start {
			lb.mu.Lock()
			if lb.current == start && slices.Equal(lb.servers, servers) {
				lb.current = n
				lb.log.Info("server changed", "from", servers[start], "to", servers[n])
			}
			lb.mu.Unlock()
		}
		return conn, nil
	}
	return nil, errors.Join(errs...)
}
