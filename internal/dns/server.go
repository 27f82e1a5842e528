package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/net/netutil"
	"k8s.io/apimachinery/pkg/types"
)

// DefaultPort is where pods' resolvers ask.
const DefaultPort = 53

// Bounds of the server.
const (
	// queryTimeout bounds the answer to one query, forwarding included.
	queryTimeout = 5 * time.Second
	// maxForwards bounds the forwarded queries in flight; one more is answered SERVFAIL at
	// once. Answers from the zone are memory lookups and need no bound.
	maxForwards = 256
	// maxTCPConns bounds the open TCP connections; more wait in the kernel's backlog.
	maxTCPConns = 256
	// maxTCPQueries bounds the queries on one TCP connection.
	maxTCPQueries = 128
	// tcpReadTimeout and tcpIdleTimeout bound a TCP client's reads and its idleness.
	tcpReadTimeout = 5 * time.Second
	tcpIdleTimeout = 10 * time.Second
	writeTimeout   = 5 * time.Second
	// serverUDPSize is the EDNS buffer size the server offers.
	serverUDPSize = 1232
	// shutdownTimeout bounds the server's stop.
	shutdownTimeout = 5 * time.Second
	// warnEvery rate-limits the warning about failed forwards.
	warnEvery = time.Minute
)

// Options configure a Server.
type Options struct {
	// Addr is the IP address the server listens on, UDP and TCP: the pods' gateway address
	// on the bridge.
	Addr net.IP
	// Port is the port; default DefaultPort.
	Port int
	// Gateway is the address Knative Routes' cluster hosts resolve to: the gateway's
	// listener for pods. Default Addr, unless GatewayService is set.
	Gateway net.IP
	// GatewayService, when set, is the Service in front of the gateways (on a node without a
	// gateway of its own: an agent's): the cluster hosts resolve to its ClusterIPs, and to
	// Gateway (none when nil) while it has none.
	GatewayService types.NamespacedName
	// ResolvConf names the host's resolvers, which get every name outside the cluster
	// domain; default DefaultResolvConf. Without a nameserver there, such names get
	// SERVFAIL.
	ResolvConf string
	// WithoutIngresses leaves Knative's Ingresses out of the zone: a cluster without the
	// serving stack has no such kind to watch (gantry server --serving=false).
	WithoutIngresses bool
	// Logger receives the server's logs; nil means none.
	Logger *slog.Logger
}

// Server is the cluster DNS server. Build it with New, feed its Zone (SetupWithManager does,
// from the Kubernetes API), Listen, then Serve.
type Server struct {
	opts     Options
	log      *slog.Logger
	zone     *Zone
	fwd      *forwarder
	forwards chan struct{}
	lastWarn atomic.Int64

	mu    sync.Mutex
	udp   net.PacketConn
	tcp   net.Listener
	ready chan struct{}
}

// New returns a server with an empty zone; it binds nothing yet.
func New(opts Options) *Server {
	if opts.Port == 0 {
		opts.Port = DefaultPort
	}
	if opts.Gateway == nil && opts.GatewayService.Name == "" {
		opts.Gateway = opts.Addr
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	self := ""
	if opts.Addr != nil {
		self = net.JoinHostPort(opts.Addr.String(), strconv.Itoa(opts.Port))
	}
	zone := NewZone(opts.Gateway)
	if opts.GatewayService.Name != "" {
		zone.SetGatewayService(opts.GatewayService)
	}
	return &Server{
		opts:     opts,
		log:      opts.Logger.With("component", "dns"),
		zone:     zone,
		fwd:      newForwarder(opts.ResolvConf, self),
		forwards: make(chan struct{}, maxForwards),
		ready:    make(chan struct{}),
	}
}

// Zone is the server's zone.
func (s *Server) Zone() *Zone { return s.zone }

// Ready is closed once the server answers from a synced zone.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Listen binds the UDP and TCP sockets.
func (s *Server) Listen() error { return s.listen(s.opts.Port) }

// listen binds the UDP and TCP sockets on port; 0 picks a port free for both.
func (s *Server) listen(port int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udp != nil {
		return nil
	}
	host := s.opts.Addr.String()
	var errs []error
	for range 5 {
		udp, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("dns: listening on %s udp/%d: %w", host, port, err)
		}
		bound := udp.LocalAddr().(*net.UDPAddr).Port
		tcp, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(bound)))
		if err != nil {
			_ = udp.Close()
			errs = append(errs, err)
			if port != 0 {
				break // a fixed port: no point in trying again
			}
			continue // a free UDP port whose TCP twin is taken: pick another
		}
		s.udp, s.tcp = udp, tcp
		return nil
	}
	return fmt.Errorf("dns: listening on %s tcp/%d: %w", host, port, errors.Join(errs...))
}

// Addr is the address the server listens on (host:port), once Listen has bound it.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.udp == nil {
		return ""
	}
	return s.udp.LocalAddr().String()
}

// Serve answers on the bound sockets until ctx ends, then stops within a few seconds. It
// binds them first when Listen has not.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	udp, tcp := s.udp, s.tcp
	s.mu.Unlock()
	var started sync.WaitGroup
	started.Add(2)
	servers := []*mdns.Server{
		{PacketConn: udp, Handler: s, WriteTimeout: writeTimeout, UDPSize: serverUDPSize, NotifyStartedFunc: started.Done},
		{
			Listener: netutil.LimitListener(tcp, maxTCPConns), Handler: s,
			ReadTimeout: tcpReadTimeout, WriteTimeout: writeTimeout,
			IdleTimeout: func() time.Duration { return tcpIdleTimeout }, MaxTCPQueries: maxTCPQueries,
			NotifyStartedFunc: started.Done,
		},
	}
	errc := make(chan error, len(servers))
	for _, srv := range servers {
		go func() { errc <- srv.ActivateAndServe() }()
	}
	started.Wait()
	close(s.ready)
	s.log.Info("dns serving", "addr", udp.LocalAddr().String(), "zone", s.zone.Origin())
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("dns: %w", err)
	}
	stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		_ = srv.ShutdownContext(stop)
	}
	return err
}

// ServeDNS answers one query.
func (s *Server) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	_ = w.WriteMsg(s.answer(ctx, req, tcp))
}

// answer is the reply to req, sized for the transport it came by.
func (s *Server) answer(ctx context.Context, req *mdns.Msg, tcp bool) *mdns.Msg {
	var resp *mdns.Msg
	switch {
	case req.Opcode != mdns.OpcodeQuery:
		resp = new(mdns.Msg).SetRcode(req, mdns.RcodeNotImplemented)
	case len(req.Question) != 1:
		resp = new(mdns.Msg).SetRcode(req, mdns.RcodeFormatError)
	case s.zone.Contains(req.Question[0].Name):
		resp = s.answerZone(ctx, req)
	default:
		resp = s.forward(ctx, req, tcp)
	}
	resp.RecursionAvailable = true
	resp.Compress = true
	// The answer carries the server's own EDNS record, never an upstream's.
	size := mdns.MinMsgSize
	kept := resp.Extra[:0]
	for _, rr := range resp.Extra {
		if rr.Header().Rrtype != mdns.TypeOPT {
			kept = append(kept, rr)
		}
	}
	resp.Extra = kept
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(serverUDPSize, false)
		size = max(size, int(min(opt.UDPSize(), serverUDPSize)))
	}
	if tcp {
		size = mdns.MaxMsgSize
	}
	resp.Truncate(size)
	return resp
}

// answerZone answers from the zone, authoritatively. An ExternalName Service's CNAME is
// followed once: inside the zone from memory, outside it through the host's resolvers.
func (s *Server) answerZone(ctx context.Context, req *mdns.Msg) *mdns.Msg {
	q := req.Question[0]
	resp := new(mdns.Msg).SetReply(req)
	resp.Authoritative = true
	if q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY {
		resp.Rcode = mdns.RcodeRefused
		return resp
	}
	r := s.zone.Lookup(q.Name, q.Qtype)
	resp.Answer, resp.Extra = r.Answer, r.Extra
	if r.Target != "" {
		resp.Answer = append(resp.Answer, s.chase(ctx, r.Target, q.Qtype)...)
	}
	switch {
	case !r.Exists:
		resp.Rcode = mdns.RcodeNameError
		resp.Ns = []mdns.RR{s.zone.SOA()}
	case len(resp.Answer) == 0:
		resp.Ns = []mdns.RR{s.zone.SOA()}
	}
	return resp
}

// chase resolves the target of a CNAME for qtype; what it cannot resolve it leaves to the
// client.
func (s *Server) chase(ctx context.Context, target string, qtype uint16) []mdns.RR {
	if s.zone.Contains(target) {
		return s.zone.Lookup(target, qtype).Answer
	}
	q := new(mdns.Msg).SetQuestion(target, qtype)
	resp := s.forward(ctx, q, false)
	if resp.Rcode != mdns.RcodeSuccess {
		return nil
	}
	return resp.Answer
}

// forward asks the host's resolvers; SERVFAIL when there are none, none answers in time, or
// too many forwards are in flight.
func (s *Server) forward(ctx context.Context, req *mdns.Msg, tcp bool) *mdns.Msg {
	select {
	case s.forwards <- struct{}{}:
		defer func() { <-s.forwards }()
	default:
		s.warn("dns: too many forwarded queries in flight; answering SERVFAIL", "limit", maxForwards)
		return new(mdns.Msg).SetRcode(req, mdns.RcodeServerFailure)
	}
	resp, err := s.fwd.exchange(ctx, req, tcp)
	if err != nil {
		s.warn("dns: forwarding failed; answering SERVFAIL", "err", err)
		return new(mdns.Msg).SetRcode(req, mdns.RcodeServerFailure)
	}
	return resp
}

// warn logs at most once per warnEvery, and at debug level otherwise.
func (s *Server) warn(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := s.lastWarn.Load()
	if now-last >= int64(warnEvery) && s.lastWarn.CompareAndSwap(last, now) {
		s.log.Warn(msg, args...)
		return
	}
	s.log.Debug(msg, args...)
}
