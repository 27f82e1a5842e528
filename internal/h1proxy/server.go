// Package h1proxy is the fast path of Gantry's proxy hops (the gateway towards the pods, the
// queue-proxy towards the user container) for the requests they forward most: plain
// HTTP/1.1 requests without a body. net/http's server builds a Request, a header map, a
// context and a response writer for every request, and its client hands each request over
// between goroutines; on two cores, with a load generator, a proxy hop and the app sharing
// them, that costs the hop about as much as the app's whole work. Here a connection's
// goroutine reads a request's head in place, lets the hop's Handler decide where it goes,
// writes the head on to a kept upstream connection and relays the answer as it arrives,
// without a Request or a header map.
//
// Everything else goes to a net/http server, the Fallback, which then owns the connection:
// heads that are large, unusual or invalid (net/http answers or refuses them by its own
// rules), requests with a body, upgrades, HTTP/1.0, HTTP/2 (h2c), and every request the
// Handler declines (one that must wait, be traced, or be answered by the hop itself). What the
// fast path accepts is a strict subset that every HTTP/1.1 parser reads the same way, so a
// request cannot mean one thing here and another upstream.
package h1proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gantry-run/gantry/internal/connpool"
)

// Handler decides where the fast path sends a request.
type Handler interface {
	// Route fills f for r and returns true, or returns false to leave r (and its connection
	// from then on) to the fallback server. r's contents are valid only during the call.
	Route(r *Request, f *Forward) bool
}

// Request is the head of a request the fast path read: a GET, HEAD or OPTIONS without a
// body, in HTTP/1.1 with a Host.
type Request struct {
	Method     string
	Host       string
	RemoteAddr string
	h          *head
	c          *conn
	// prior, on a connection passed to this hop, is what the passing hop sets and drops
	// (Passed.Rewrite): the request's fields are then those that hop would have sent.
	prior *Forward
}

// Get returns the first value of the field name ("" when there is none).
func (r *Request) Get(name string) string {
	v, client, _ := r.first(name)
	if client != nil {
		return string(client)
	}
	return v
}

// Has reports whether the request has a field name.
func (r *Request) Has(name string) bool {
	_, _, ok := r.first(name)
	return ok
}

// first finds the first value of the field name, and whether there is one: v when the passing
// hop decided it (priorField), client (not nil) when it is the client's.
func (r *Request) first(name string) (v string, client []byte, ok bool) {
	if r.prior != nil {
		if v, ok, decided := r.priorField(name); decided {
			return v, nil, ok
		}
	}
	for _, f := range r.h.fields {
		if n := r.h.bytes(f.name); equalFold(n, name) && r.sent(n) {
			return "", r.h.bytes(f.value), true
		}
	}
	return "", nil, false
}

// Values returns every value of the field name, in order.
func (r *Request) Values(name string) []string {
	var out []string
	if r.prior != nil {
		if v, ok, decided := r.priorField(name); decided {
			switch {
			case !ok:
				return nil
			case equalFold(name, "host"):
				return []string{v}
			}
			for _, s := range r.prior.set {
				if equalFold(s.name, name) {
					out = append(out, s.value)
				}
			}
			return out
		}
	}
	for _, f := range r.h.fields {
		if n := r.h.bytes(f.name); equalFold(n, name) && r.sent(n) {
			out = append(out, string(r.h.bytes(f.value)))
		}
	}
	return out
}

// priorField answers for the field name on a passed connection when the passing hop decided
// it: the Host it sends, a field it sets (the first value) or drops, or one of the client's
// connection, which it does not send on. decided is false when the client's fields answer.
func (r *Request) priorField(name string) (v string, ok, decided bool) {
	p := r.prior
	if equalFold(name, "host") {
		if p.Host != "" {
			return p.Host, true, true
		}
		return r.Host, true, true
	}
	for _, s := range p.set {
		if equalFold(s.name, name) {
			return s.value, true, true
		}
	}
	for _, d := range p.drop {
		if equalFold(d, name) {
			return "", false, true
		}
	}
	if hopByHop(name) {
		return "", false, true
	}
	return "", false, false
}

// sent reports whether the client's field name is one of the request's fields: on a passed
// connection, those of the client's connection are not (the passing hop does not send them).
func (r *Request) sent(name []byte) bool {
	return r.prior == nil || (!hopByHop(name) && !listedIn(r.c.connection, name))
}

// Path is the request's target (origin form: the path and query).
func (r *Request) Path() string { return string(r.h.bytes(r.h.line[1])) }

// Context is cancelled when the client closes its connection, or once the exchange ended. A
// Route that waits (for a pod, for a slot) waits on it; it costs a goroutine that watches the
// connection, so a Route that does not wait should not ask for it.
func (r *Request) Context() context.Context {
	c := r.c
	if c.ctx == nil {
		c.ctx, c.cancel = context.WithCancel(context.Background())
		c.w.start(c)
	}
	return c.ctx
}

// Forward is where and how a request goes on.
type Forward struct {
	// Addr is the upstream's host:port.
	Addr string
	// Host replaces the request's Host; empty keeps it.
	Host string
	// Began is when the bounds below start counting (a Route that waited sets it to when
	// the request came); zero is when the request is sent on.
	Began time.Time
	// ResponseStart bounds the wait for the answer's head, Total the whole exchange, Idle
	// the time without a byte of the answer (from the start too); zero does not bound. Past ResponseStart or
	// Total before the answer began the client gets 504 with TimeoutBody; after, the
	// connection is cut, so a truncated answer cannot pass for a whole one.
	ResponseStart, Total, Idle time.Duration
	TimeoutBody                string
	// ErrorBody is the body of the 502 a client gets when the upstream cannot be reached or
	// answers with something that is not HTTP/1.1.
	ErrorBody string
	// Done, if set, is called once the exchange ended, with the status the client got: 0
	// when it left before an answer.
	Done func(status int)

	set  []setField
	drop []string
	// reply, when not zero, is the status the hop answers itself with replyBody.
	reply     int
	replyBody string
}

// Reply makes the hop answer the request itself, with status and a plain-text body, instead
// of sending it on (a full queue, a wait that timed out).
func (f *Forward) Reply(status int, body string) { f.reply, f.replyBody = status, body }

type setField struct{ name, value string }

// Set sends the field name with value instead of any the request has.
func (f *Forward) Set(name, value string) { f.set = append(f.set, setField{name, value}) }

// Drop removes the request's fields named name.
func (f *Forward) Drop(name string) { f.drop = append(f.drop, name) }

// names reports whether f drops or sets the field name.
func names[T string | []byte](f *Forward, name T) bool {
	for _, d := range f.drop {
		if equalFold(name, d) {
			return true
		}
	}
	for _, s := range f.set {
		if equalFold(name, s.name) {
			return true
		}
	}
	return false
}

// sendable reports whether f's Host and fields can be sent as they are, as a head the fast
// path takes: field names are tokens other than Host and Connection, values hold no control
// characters.
func (f *Forward) sendable() bool {
	if !plainValue(f.Host) {
		return false
	}
	for _, s := range f.set {
		// A Connection field would make fields of the passing hop's connection out of them.
		if s.name == "" || equalFold(s.name, "host") || equalFold(s.name, "connection") || !plainValue(s.value) {
			return false
		}
		for i := range len(s.name) {
			if !isTokenByte(s.name[i]) {
				return false
			}
		}
	}
	return true
}

// plainValue reports whether v may be a field's value: no control characters but tabs, and
// no white space around it.
func plainValue(v string) bool {
	return controlFree(v) && (v == "" || (v[0] != ' ' && v[0] != '\t' && v[len(v)-1] != ' ' && v[len(v)-1] != '\t'))
}

func (f *Forward) reset() {
	set, drop := f.set[:0], f.drop[:0]
	*f = Forward{set: set, drop: drop}
}

// Server serves connections with the fast path and the Fallback.
type Server struct {
	Handler  Handler
	Fallback *http.Server
	// ReadHeaderTimeout bounds the reading of a head once its first byte arrived, IdleTimeout
	// the wait for the next request on a kept connection.
	ReadHeaderTimeout, IdleTimeout time.Duration
	// MaxIdlePerHost bounds the idle upstream connections kept per address (default 100),
	// UpstreamIdleTimeout how long one is kept idle (default 90 s).
	MaxIdlePerHost      int
	UpstreamIdleTimeout time.Duration
	// Dial connects to an upstream address (within 5 s); nil dials TCP.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	Log  *slog.Logger
	// Pass, when set, is offered each plain request of a connection before Route (but on
	// connections that came back with ServeConn(..., false), and requests that close their
	// connection): it may pass the whole connection to another hop, with buffered, what was
	// read of it and not served yet (the request first), and return true; the Server then
	// closes its own descriptor of the connection and forgets it. See Passed.
	Pass func(r *Request, nc net.Conn, buffered []byte) bool

	once     sync.Once
	pool     *pool
	handoff  *handoffListener
	shutting atomic.Bool
	mu       sync.Mutex
	conns    map[*conn]struct{}
	lns      []net.Listener
}

const bufferSize = 8 << 10

// aLongTimeAgo is a deadline that makes a blocked read return at once.
var aLongTimeAgo = time.Unix(1, 0)

// ErrServerClosed is what Serve returns after Shutdown or Close.
var ErrServerClosed = http.ErrServerClosed

func (s *Server) init() {
	s.once.Do(func() {
		if s.Log == nil {
			s.Log = slog.New(slog.DiscardHandler)
		}
		maxIdle, idleTimeout := s.MaxIdlePerHost, s.UpstreamIdleTimeout
		if maxIdle <= 0 {
			maxIdle = 100
		}
		if idleTimeout <= 0 {
			idleTimeout = 90 * time.Second
		}
		p := &pool{idle: connpool.New[*upstream](maxIdle, idleTimeout), dial: s.Dial}
		if p.dial == nil {
			d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
			p.dial = d.DialContext
		}
		s.pool = p
		s.handoff = newHandoffListener()
		s.conns = map[*conn]struct{}{}
		go func() {
			if err := s.Fallback.Serve(s.handoff); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.Log.Warn("h1proxy: fallback server", "err", err)
			}
		}()
	})
}

// Serve accepts connections on ln until Shutdown or Close, which close ln; then it returns
// ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.lns = append(s.lns, ln)
	s.handoff.setAddr(ln.Addr())
	s.mu.Unlock()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := &conn{s: s, nc: nc, remote: nc.RemoteAddr().String()}
		if !s.track(c, true) {
			_ = nc.Close()
			continue
		}
		go c.serve()
	}
}

// ServeConn serves nc as a connection Serve accepted, after buffered, the bytes already read
// of it: a connection a hop it was passed to gave back. Its first request is served here,
// not passed (so a connection cannot go back and forth on one request); mayPass false keeps
// it from Pass for good (it came back because that hop cannot serve requests like its next).
func (s *Server) ServeConn(nc net.Conn, buffered []byte, mayPass bool) {
	s.init()
	if nc.RemoteAddr() == nil {
		// Its client reset it on its way back (a socket received with no peer has no
		// remote address): nobody is left to serve, and the fallback server, which may
		// take it over, needs that address.
		_ = nc.Close()
		return
	}
	c := &conn{s: s, nc: nc, remote: nc.RemoteAddr().String(), pending: buffered, noPass: !mayPass, skipPass: true}
	if !s.track(c, true) {
		_ = nc.Close()
		return
	}
	go c.serve()
}

// Passed is a client connection another hop passed to this one (Server.Pass there,
// ServePassed here) with a lease: this hop serves the requests that the passing hop would
// have sent it, as that hop would have sent them, and gives the connection back (Return) with
// what it read and did not serve for everything else: a request for another Host, one that is
// not plain, one the Handler declines, the first idle moment after Until, and Shutdown.
type Passed struct {
	// Host is the Host every request served here names (compared without case).
	Host string
	// Rewrite makes a request what the passing hop would have sent on: the fields it sets.
	Rewrite func(r *Request, f *Forward)
	// Peer is the remote address the Handler sees, the passing hop's.
	Peer string
	// Until ends the lease: the connection goes back at its first idle moment after it.
	Until time.Time
	// Return gives the connection back with buffered; again is false when this hop could
	// not serve its next request (the passing hop should then not pass it again). It reports
	// whether the passing hop took it. Either way the Server then closes its own descriptor.
	Return func(nc net.Conn, buffered []byte, again bool) bool
	// Served, if set, is told each request's status and duration (from Forward.Began, or
	// from when the Handler routed it), for the passing hop's metrics.
	Served func(status int, d time.Duration)
	// Closed, if set, is called when the connection ended here rather than going back.
	Closed func()
}

// ServePassed serves nc, passed with p, after buffered (what the passing hop read of it and
// did not serve, a request first).
func (s *Server) ServePassed(nc net.Conn, buffered []byte, p *Passed) {
	s.init()
	c := &conn{s: s, nc: nc, remote: p.Peer, pending: buffered, passed: p}
	if !s.track(c, true) {
		_ = nc.SetReadDeadline(time.Time{})
		if !p.Return(nc, buffered, true) && p.Closed != nil {
			p.Closed()
		}
		_ = nc.Close()
		return
	}
	go c.serve()
}

func (s *Server) track(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.shutting.Load() {
			return false
		}
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
	return true
}

// Shutdown stops accepting, closes idle connections, waits for the fast path's requests in
// flight to end and for the fallback server's Shutdown, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.shutting.Store(true)
	s.closeListeners()
	fallback := make(chan error, 1)
	go func() { fallback <- s.Fallback.Shutdown(ctx) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.closeIdle() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	s.pool.close()
	select {
	case err := <-fallback:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.init()
	s.shutting.Store(true)
	s.closeListeners()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.nc.Close()
	}
	s.mu.Unlock()
	s.pool.close()
	return s.Fallback.Close()
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ln := range s.lns {
		_ = ln.Close()
	}
}

// closeIdle wakes the connections that wait for a request, which then close, and returns how
// many connections the fast path still has.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		// Again on the next call for one closing already: its goroutine may have set the
		// deadline of its wait just after this one.
		if c.state.CompareAndSwap(stateIdle, stateClosing) || c.state.Load() == stateClosing {
			_ = c.nc.SetReadDeadline(aLongTimeAgo)
		}
	}
	return len(s.conns)
}

// Connection states: a connection is idle while it waits for a request's first byte, active
// from then until its answer was sent.
const (
	stateActive int32 = iota
	stateIdle
	stateClosing
)

// conn is one client connection on the fast path.
type conn struct {
	s      *Server
	nc     net.Conn
	io     *connIO
	remote string
	state  atomic.Int32
	br     *bufio.Reader
	bw     *bufio.Writer
	// pending holds a byte the watcher read from the client while an answer was on its way.
	pending []byte
	req     head
	r       Request
	resp    head
	out     []byte
	fwd     Forward
	// w watches the client while a request waits or its answer is on its way; ctx, made by
	// Request.Context, ends when the client leaves or the exchange ended.
	w      watcher
	ctx    context.Context
	cancel context.CancelFunc
	// consumed is how much of the reader's buffer the current request's head takes.
	consumed int
	// host is the Host of the connection's last request.
	host string
	// connection holds the values of the current request's Connection fields: the fields
	// they name are the client connection's own.
	connection [][]byte
	// passed is set on a connection passed to this hop; prior is what the passing hop sets
	// and drops on the current request.
	passed *Passed
	prior  Forward
	// checked holds the passing hop's Host and fields last found sendable.
	checked Forward
	// noPass keeps the connection from Server.Pass; skipPass, its next request.
	noPass, skipPass bool
}

// Read reads the client, after what the watcher read.
func (c *conn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.io.Read(p)
}

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufferSize) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufferSize) }}
)

func (c *conn) serve() {
	c.io = newConnIO(c.nc)
	c.br = readers.Get().(*bufio.Reader)
	c.br.Reset(c)
	c.bw = writers.Get().(*bufio.Writer)
	c.bw.Reset(c.io)
	handedOff, passedOn := false, false
	defer func() {
		c.s.track(c, false)
		if !handedOff {
			// Passed on or given back, the connection lives on in the other hop's descriptor.
			_ = c.nc.Close()
			if !passedOn && c.passed != nil && c.passed.Closed != nil {
				c.passed.Closed()
			}
			c.br.Reset(nil)
			readers.Put(c.br)
		}
		c.bw.Reset(nil)
		writers.Put(c.bw)
	}()
	// leave gives the connection to the fallback server, or back to the hop that passed it;
	// again tells that hop whether to pass it again.
	leave := func(again bool) {
		if c.passed != nil {
			passedOn = c.giveBack(again)
		} else {
			handedOff = c.handOff()
		}
	}
	for {
		if c.s.shutting.Load() {
			if c.passed != nil {
				passedOn = c.giveBack(true)
			}
			return
		}
		c.state.Store(stateIdle)
		if c.br.Buffered() == 0 {
			now, deadline := time.Now(), time.Time{}
			if c.s.IdleTimeout > 0 {
				deadline = now.Add(c.s.IdleTimeout)
			}
			if c.passed != nil {
				if !now.Before(c.passed.Until) {
					passedOn = c.giveBack(true)
					return
				}
				if deadline.IsZero() || c.passed.Until.Before(deadline) {
					deadline = c.passed.Until
				}
			}
			c.io.boundReads(deadline, c.s.IdleTimeout/64)
			if _, err := c.br.Peek(1); err != nil {
				var ne net.Error
				if c.passed != nil && errors.As(err, &ne) && ne.Timeout() &&
					(c.s.shutting.Load() || !time.Now().Before(c.passed.Until)) {
					passedOn = c.giveBack(true)
				}
				return
			}
		}
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			if c.passed != nil {
				passedOn = c.giveBack(true)
			}
			return // Shutdown closed it while it was idle
		}
		// A head that arrived whole needs no read, so no bound on reading it. The idle
		// deadline set above then stays on the connection: the next read of it (the next
		// wait for a request, the watcher, the fallback server, the passing hop) sets its own.
		whole := headBuffered(c.br)
		if !whole && c.s.ReadHeaderTimeout > 0 {
			c.io.boundReads(time.Now().Add(c.s.ReadHeaderTimeout), 0)
		}
		raw, err := peekHead(c.br)
		if errors.Is(err, errNotPlain) {
			leave(false)
			return
		}
		if err != nil {
			return
		}
		if !whole {
			c.io.boundReads(time.Time{}, 0)
		}
		req, closeAfter, ok := c.plain(raw)
		if !ok {
			leave(false)
			return
		}
		c.consumed = len(raw)
		if c.passed != nil {
			if req = c.rewrite(req); req == nil {
				passedOn = c.giveBack(false)
				return
			}
		} else if c.s.Pass != nil && !c.noPass && !closeAfter && !c.skipPass {
			if passedOn = c.s.Pass(req, c.nc, c.buffered()); passedOn {
				return
			}
		}
		c.skipPass = false
		c.fwd.reset()
		if !c.s.Handler.Route(req, &c.fwd) {
			gone := c.w.gone.Load()
			c.endExchange()
			if !gone {
				// A request the Handler declines now (the hop drains, a probe) may be
				// served by it, or by another, later.
				leave(true)
			}
			return
		}
		if c.fwd.Began.IsZero() && c.passed != nil && c.passed.Served != nil {
			c.fwd.Began = time.Now() // for Served
		}
		keep := c.exchange(req, &c.fwd, closeAfter || c.s.shutting.Load())
		c.endExchange()
		if !keep || closeAfter {
			return
		}
	}
}

// exchange answers req as the Handler said: with its own reply, or by forwarding it.
func (c *conn) exchange(req *Request, f *Forward, closeClient bool) bool {
	if c.w.gone.Load() {
		c.done(f, 0)
		return false
	}
	if f.reply == 0 {
		return c.forward(req, f, closeClient)
	}
	_, _ = c.br.Discard(c.consumed)
	c.w.stop(c)
	keep := c.answer(f.reply, f.replyBody, closeClient)
	c.done(f, f.reply)
	return keep
}

// done tells f.Done, and on a passed connection Passed.Served, that the exchange ended with
// status.
func (c *conn) done(f *Forward, status int) {
	if f.Done != nil {
		f.Done(status)
	}
	if c.passed != nil && c.passed.Served != nil {
		c.passed.Served(status, time.Since(f.Began))
	}
}

// endExchange stops watching the client and ends the request's context.
func (c *conn) endExchange() {
	c.w.stop(c)
	if c.cancel != nil {
		c.cancel()
		c.ctx, c.cancel = nil, nil
	}
	c.w.gone.Store(false)
}

// buffered is what was read of the client and not served yet.
func (c *conn) buffered() []byte {
	b, _ := c.br.Peek(c.br.Buffered())
	if len(c.pending) > 0 {
		b = append(append([]byte(nil), b...), c.pending...)
	}
	return b
}

// giveBack returns a passed connection, with what was read of it and not served, to the hop
// that passed it; false when that hop did not take it (the connection is then closed).
func (c *conn) giveBack(again bool) bool {
	c.io.boundReads(time.Time{}, 0)
	return c.passed.Return(c.nc, c.buffered(), again)
}

// rewrite makes req, a request on a passed connection, what the passing hop would have sent
// on, or returns nil when it is not one this hop may serve (another Host, or fields the
// passing hop would not have been able to send).
func (c *conn) rewrite(req *Request) *Request {
	p := c.passed
	if !equalFold(req.Host, p.Host) {
		return nil
	}
	c.prior.reset()
	p.Rewrite(req, &c.prior)
	if !c.priorSendable() {
		return nil
	}
	req.prior = &c.prior
	return req
}

// priorSendable reports c.prior.sendable(). The passing hop sets mostly the same fields on
// each request of a connection: those checked last are kept, and fields equal to them are not
// checked again.
func (c *conn) priorSendable() bool {
	p := &c.prior
	if p.Host == c.checked.Host && slices.Equal(p.set, c.checked.set) {
		return true
	}
	if !p.sendable() {
		return false
	}
	c.checked.Host, c.checked.set = p.Host, append(c.checked.set[:0], p.set...)
	return true
}

// handOff gives the connection, with what was read of it, to the fallback server.
func (c *conn) handOff() bool {
	c.io.boundReads(time.Time{}, 0)
	return c.s.handoff.deliver(&handoffConn{Conn: c.nc, r: c.br})
}

// plain parses raw and tells whether the fast path takes it, and whether the client asked to
// close the connection after it.
func (c *conn) plain(raw []byte) (req *Request, closeAfter, ok bool) {
	h := &c.req
	if h.parse(raw) != nil || string(h.bytes(h.line[2])) != "HTTP/1.1" {
		return nil, false, false
	}
	var method string
	switch m := h.bytes(h.line[0]); string(m) {
	case http.MethodGet:
		method = http.MethodGet
	case http.MethodHead:
		method = http.MethodHead
	case http.MethodOptions:
		method = http.MethodOptions
	default:
		return nil, false, false
	}
	if t := h.bytes(h.line[1]); len(t) == 0 || t[0] != '/' {
		return nil, false, false
	}
	host, hosts := []byte(nil), 0
	c.connection = c.connection[:0]
	for _, f := range h.fields {
		name, value := h.bytes(f.name), h.bytes(f.value)
		switch {
		case equalFold(name, "host"):
			host = value
			hosts++
		case equalFold(name, "content-length"):
			if string(value) != "0" {
				return nil, false, false
			}
		case equalFold(name, "transfer-encoding"), equalFold(name, "upgrade"), equalFold(name, "expect"):
			return nil, false, false
		case equalFold(name, "connection"):
			if hasToken(value, "upgrade") {
				return nil, false, false
			}
			closeAfter = closeAfter || hasToken(value, "close")
			c.connection = append(c.connection, value)
		}
	}
	if hosts != 1 || len(host) == 0 || h.count("content-length") > 1 {
		return nil, false, false
	}
	if string(host) != c.host {
		c.host = string(host) // a connection's requests mostly name one host: made once
	}
	c.r = Request{Method: method, Host: c.host, RemoteAddr: c.remote, h: h, c: c}
	return &c.r, closeAfter, true
}

// forward sends req on as f says and relays the answer. It returns whether the client's
// connection may serve another request.
func (c *conn) forward(req *Request, f *Forward, closeClient bool) (keep bool) {
	start := f.Began
	if start.IsZero() {
		start = time.Now()
	}
	status := 0
	defer func() { c.done(f, status) }()
	c.out = c.requestHead(c.out[:0], req, f)
	// The client's head is written on; from here its buffer may be read again.
	_, _ = c.br.Discard(c.consumed)

	w := &c.w
	var up *upstream
	for attempt := 0; ; attempt++ {
		u, reused, err := c.s.pool.get(f.Addr)
		if err != nil {
			status = http.StatusBadGateway
			return c.answer(status, f.ErrorBody+err.Error()+"\n", closeClient)
		}
		if !w.watch(u) {
			_ = u.nc.Close()
			return false
		}
		err = c.awaitHead(u, f, start, w)
		if err == nil {
			up = u
			break
		}
		_ = u.nc.Close()
		switch {
		case w.gone.Load():
			return false
		case errors.Is(err, errTimeout):
			status = http.StatusGatewayTimeout
			return c.answer(status, f.TimeoutBody, closeClient)
		case reused && attempt == 0 && u.br.Buffered() == 0 && !errors.Is(err, errBadResponse):
			// A kept connection the upstream had closed: once more, on a new one.
			continue
		}
		status = http.StatusBadGateway
		msg := err.Error()
		if errors.Is(err, errBadResponse) {
			msg = errBadResponse.Error()
		}
		return c.answer(status, f.ErrorBody+msg+"\n", closeClient)
	}
	status, keep = c.relay(up, req, f, start, closeClient, w)
	return keep && !w.gone.Load()
}

// requestHead appends the head sent upstream: the request line, Host, the client's fields
// but those that belong to its connection or that f drops or sets, then f's fields. On a
// passed connection the passing hop's fields (req.prior) come first, as it would have sent
// them: its Host, and its fields after the client's.
func (c *conn) requestHead(b []byte, req *Request, f *Forward) []byte {
	h, prior := &c.req, req.prior
	b = append(b, req.Method...)
	b = append(b, ' ')
	b = append(b, h.bytes(h.line[1])...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	switch {
	case f.Host != "":
		b = append(b, f.Host...)
	case prior != nil && prior.Host != "":
		b = append(b, prior.Host...)
	default:
		b = append(b, req.Host...)
	}
	b = append(b, "\r\n"...)
	for _, fl := range h.fields {
		name := h.bytes(fl.name)
		if equalFold(name, "host") || hopByHop(name) || (len(c.connection) > 0 && listedIn(c.connection, name)) ||
			names(f, name) || (prior != nil && names(prior, name)) {
			continue
		}
		b = append(b, h.raw[fl.name.start:fl.value.end]...)
		b = append(b, "\r\n"...)
	}
	if prior != nil {
		for _, s := range prior.set {
			if !hopByHop(s.name) && !names(f, s.name) {
				b = appendField(b, s)
			}
		}
	}
	for _, s := range f.set {
		b = appendField(b, s)
	}
	return append(b, "\r\n"...)
}

func appendField(b []byte, s setField) []byte {
	b = append(b, s.name...)
	b = append(b, ": "...)
	b = append(b, s.value...)
	return append(b, "\r\n"...)
}

// connectionTokens returns the values of h's Connection fields: the names they list are
// fields of that connection only.
func connectionTokens(h *head) [][]byte {
	var out [][]byte
	for _, f := range h.fields {
		if equalFold(h.bytes(f.name), "connection") {
			out = append(out, h.bytes(f.value))
		}
	}
	return out
}

var errTimeout = errors.New("h1proxy: upstream timeout")

// watchAfter is how long an answer may take before a watcher starts to notice a client that
// leaves (net/http's server reads in the background for the same reason); quick answers go
// without one.
const watchAfter = 50 * time.Millisecond

// awaitHead writes c.out to u and waits for the answer's head, relaying informational
// answers. The head is parsed into c.resp.
func (c *conn) awaitHead(u *upstream, f *Forward, start time.Time, w *watcher) error {
	deadline := FirstDeadline(start, f.ResponseStart, f.Total, f.Idle)
	u.io.boundWrites(start.Add(dialTimeout))
	if _, err := u.io.Write(c.out); err != nil {
		return err
	}
	u.io.boundWrites(time.Time{})
	for {
		wait, slack := deadline, time.Duration(0)
		if !w.started() {
			if now := time.Now(); wait.IsZero() || wait.Sub(now) > watchAfter {
				// When to start watching need not be exact.
				wait, slack = now.Add(watchAfter), watchAfter/2
			}
		}
		u.io.boundReads(wait, slack)
		raw, err := peekHead(u.br)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !w.started() && (deadline.IsZero() || time.Now().Before(deadline)) {
					w.start(c)
					continue
				}
				return errTimeout
			}
			if errors.Is(err, errNotPlain) {
				return errBadResponse
			}
			return err
		}
		if err := c.resp.parse(raw); err != nil {
			return errBadResponse
		}
		code, ok := statusCode(&c.resp)
		if !ok || code == http.StatusSwitchingProtocols {
			return errBadResponse
		}
		if code >= 200 {
			return nil
		}
		// 100 Continue, 103 Early Hints: passed on as they came.
		if _, err := c.bw.Write(raw); err != nil {
			return err
		}
		if err := c.bw.Flush(); err != nil {
			return err
		}
		_, _ = u.br.Discard(len(raw))
	}
}

// statusCode reads a status line's version and code.
func statusCode(h *head) (int, bool) {
	if v := string(h.bytes(h.line[0])); v != "HTTP/1.1" && v != "HTTP/1.0" {
		return 0, false
	}
	code := h.bytes(h.line[1])
	if len(code) != 3 {
		return 0, false
	}
	n := 0
	for _, d := range code {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int(d-'0')
	}
	return n, n >= 100
}

// FirstDeadline is the first of start+d for the positive durations ds; zero when there is
// none.
func FirstDeadline(start time.Time, ds ...time.Duration) time.Time {
	first := time.Duration(0)
	for _, d := range ds {
		if d > 0 && (first == 0 || d < first) {
			first = d
		}
	}
	if first == 0 {
		return time.Time{}
	}
	return start.Add(first)
}

// body framings of an answer.
const (
	noBody = iota
	sized
	chunked
	untilClose
)

// relay writes the answer whose head is in c.resp to the client, and its body as it arrives.
func (c *conn) relay(u *upstream, req *Request, f *Forward, start time.Time, closeClient bool, w *watcher) (status int, keep bool) {
	h := &c.resp
	status, _ = statusCode(h)
	framing, length := noBody, int64(0)
	te, hasTE := h.get("transfer-encoding")
	switch {
	case req.Method == http.MethodHead || status == http.StatusNoContent || status == http.StatusNotModified:
	case hasTE:
		if !lastTokenIs(te, "chunked") || h.count("transfer-encoding") > 1 {
			return c.badAnswer(u, f, closeClient)
		}
		framing = chunked
	default:
		if v, ok := h.get("content-length"); ok {
			n, valid := parseLength(v)
			if !valid || !sameLengths(h, v) {
				return c.badAnswer(u, f, closeClient)
			}
			framing, length = sized, n
		} else {
			framing = untilClose
		}
	}
	upConnection := connectionTokens(h)
	keepUp := string(h.bytes(h.line[0])) == "HTTP/1.1" && framing != untilClose
	for _, v := range upConnection {
		if hasToken(v, "close") {
			keepUp = false
		}
	}
	closeClient = closeClient || framing == untilClose

	b := c.out[:0]
	b = append(b, "HTTP/1.1 "...)
	b = append(b, h.raw[h.line[1].start:h.line[2].end]...)
	b = append(b, "\r\n"...)
	for _, fl := range h.fields {
		name := h.bytes(fl.name)
		// The chunks pass as they are, so their framing stays announced.
		framingField := framing == chunked && (equalFold(name, "transfer-encoding") || equalFold(name, "trailer"))
		if !framingField && (hopByHop(name) || (len(upConnection) > 0 && listedIn(upConnection, name)) ||
			(framing == chunked && equalFold(name, "content-length"))) {
			continue
		}
		b = append(b, h.raw[fl.name.start:fl.value.end]...)
		b = append(b, "\r\n"...)
	}
	if closeClient {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	c.out = b
	_, _ = u.br.Discard(len(h.raw))
	if f.Total > 0 {
		c.io.boundWrites(start.Add(f.Total))
		defer c.io.boundWrites(time.Time{})
	}
	if _, err := c.bw.Write(b); err != nil {
		_ = u.nc.Close()
		return status, false
	}
	r := &bodyReader{u: u, f: f, start: start, c: c}
	var err error
	switch framing {
	case sized:
		err = r.copyN(length)
	case chunked:
		err = r.copyChunked()
	case untilClose:
		err = r.copyN(-1)
	}
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		// A cut answer: the client must not take it for a whole one.
		_ = u.nc.Close()
		return status, false
	}
	if keepUp {
		w.stop(c)
		if w.gone.Load() {
			_ = u.nc.Close()
			return status, false
		}
		c.s.pool.put(u)
	} else {
		_ = u.nc.Close()
	}
	return status, !closeClient
}

// badAnswer answers 502 for an answer whose head cannot be relayed.
func (c *conn) badAnswer(u *upstream, f *Forward, closeClient bool) (int, bool) {
	_ = u.nc.Close()
	return http.StatusBadGateway, c.answer(http.StatusBadGateway, f.ErrorBody+errBadResponse.Error()+"\n", closeClient)
}

// sameLengths reports whether every Content-Length field of h says v.
func sameLengths(h *head, v []byte) bool {
	for _, f := range h.fields {
		if equalFold(h.bytes(f.name), "content-length") && string(h.bytes(f.value)) != string(v) {
			return false
		}
	}
	return true
}

// lastTokenIs reports whether the last item of a comma-separated list is tok.
func lastTokenIs(list []byte, tok string) bool {
	if i := bytes.LastIndexByte(list, ','); i >= 0 {
		list = list[i+1:]
	}
	return equalFold(bytes.Trim(list, " \t"), tok)
}

// answer writes the hop's own answer (502, 504) and returns whether the connection may go on.
func (c *conn) answer(status int, body string, closeClient bool) bool {
	b := c.out[:0]
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	if closeClient {
		b = append(b, "\r\nConnection: close"...)
	}
	b = append(b, "\r\n\r\n"...)
	b = append(b, body...)
	c.out = b
	if _, err := c.bw.Write(b); err != nil {
		return false
	}
	return c.bw.Flush() == nil && !closeClient
}

// bodyReader copies an answer's body from the upstream to the client, flushing what it has
// before it waits for more (so streams and events reach the client as they come), within the
// Forward's idle and total bounds.
type bodyReader struct {
	u     *upstream
	f     *Forward
	start time.Time
	c     *conn
}

// fill makes at least one byte of the body available.
func (r *bodyReader) fill() error {
	if r.u.br.Buffered() > 0 {
		return nil
	}
	return r.more(1)
}

// more waits until n bytes of the body are buffered, flushing the client first (so that what
// it has goes out before the wait), within the idle and total bounds.
func (r *bodyReader) more(n int) error {
	if err := r.c.bw.Flush(); err != nil {
		return err
	}
	deadline := time.Time{}
	if r.f.Idle > 0 {
		deadline = time.Now().Add(r.f.Idle)
	}
	if total := FirstDeadline(r.start, r.f.Total); !total.IsZero() && (deadline.IsZero() || total.Before(deadline)) {
		deadline = total
	}
	r.u.io.boundReads(deadline, 0)
	_, err := r.u.br.Peek(n)
	return err
}

// copyN copies n bytes, or (n < 0) everything until the upstream closes.
func (r *bodyReader) copyN(n int64) error {
	for n != 0 {
		if err := r.fill(); err != nil {
			if n < 0 && errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		avail := int64(r.u.br.Buffered())
		if n > 0 {
			avail = min(avail, n)
		}
		b, _ := r.u.br.Peek(int(avail))
		if _, err := r.c.bw.Write(b); err != nil {
			return err
		}
		_, _ = r.u.br.Discard(len(b))
		if n > 0 {
			n -= avail
		}
	}
	return nil
}

// copyChunked copies a chunked body as it is: each chunk's size line and data, then the
// trailer section through its empty line.
func (r *bodyReader) copyChunked() error {
	for {
		line, err := r.line()
		if err != nil {
			return err
		}
		size, ok := chunkSize(line)
		if !ok {
			return errBadResponse
		}
		if err := r.copyN(int64(len(line))); err != nil {
			return err
		}
		if size == 0 {
			for {
				t, err := r.line()
				if err != nil {
					return err
				}
				if err := r.copyN(int64(len(t))); err != nil {
					return err
				}
				if len(t) == 2 {
					return nil
				}
			}
		}
		if err := r.copyN(size); err != nil {
			return err
		}
		end, err := r.line()
		if err != nil {
			return err
		}
		if len(end) != 2 {
			return errBadResponse
		}
		if err := r.copyN(2); err != nil {
			return err
		}
	}
}

// line peeks at the next line of the body, CRLF included, without consuming it.
func (r *bodyReader) line() ([]byte, error) {
	for {
		if err := r.fill(); err != nil {
			return nil, err
		}
		buf, _ := r.u.br.Peek(r.u.br.Buffered())
		for i := 0; i+1 < len(buf); i++ {
			if buf[i] == '\n' {
				return nil, errBadResponse
			}
			if buf[i] == '\r' {
				if buf[i+1] != '\n' {
					return nil, errBadResponse
				}
				return buf[:i+2], nil
			}
		}
		if len(buf) >= maxChunkLine {
			return nil, errBadResponse
		}
		if err := r.more(len(buf) + 1); err != nil {
			return nil, err
		}
	}
}

const maxChunkLine = 4 << 10

// chunkSize reads a chunk's size line (hex, then optional extensions, then CRLF).
func chunkSize(line []byte) (int64, bool) {
	line = line[:len(line)-2]
	n, digits := int64(0), 0
	for _, d := range line {
		var v byte
		switch {
		case d >= '0' && d <= '9':
			v = d - '0'
		case d >= 'a' && d <= 'f':
			v = d - 'a' + 10
		case d >= 'A' && d <= 'F':
			v = d - 'A' + 10
		case d == ';' || d == ' ' || d == '\t':
			return n, digits > 0
		default:
			return 0, false
		}
		if digits++; digits > 15 {
			return 0, false
		}
		n = n<<4 | int64(v)
	}
	return n, digits > 0
}

// watcher notices, while an answer is on its way, that the client closed its connection,
// and then closes the upstream connection so that the upstream stops working for nobody.
type watcher struct {
	gone atomic.Bool
	done chan struct{}
	up   atomic.Pointer[upstream] // the connection the answer is awaited on
}

// watch makes u the connection to close when the client leaves; false if it left already.
func (w *watcher) watch(u *upstream) bool {
	w.up.Store(u)
	return !w.gone.Load()
}

func (w *watcher) started() bool { return w.done != nil }

func (w *watcher) start(c *conn) {
	// The connection may still hold the deadline of its wait for this request.
	c.io.boundReads(time.Time{}, 0)
	w.done = make(chan struct{})
	go func() {
		defer close(w.done)
		var b [1]byte
		n, err := c.nc.Read(b[:])
		if n > 0 {
			// The next request, pipelined: kept for the connection's reader.
			c.pending = append(c.pending[:0], b[0])
			return
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return // stopped
		}
		w.gone.Store(true)
		if c.cancel != nil {
			c.cancel()
		}
		if u := w.up.Load(); u != nil {
			_ = u.nc.Close()
		}
	}()
}

// stop ends the watcher and waits for it.
func (w *watcher) stop(c *conn) {
	if w.done == nil {
		return
	}
	c.io.boundReads(aLongTimeAgo, 0)
	<-w.done
	c.io.boundReads(time.Time{}, 0)
	w.done = nil
	w.up.Store(nil)
}

// handoffConn is a connection the fallback server takes over, with what was read of it.
type handoffConn struct {
	net.Conn
	r *bufio.Reader
}

func (h *handoffConn) Read(p []byte) (int, error) { return h.r.Read(p) }

// handoffListener is the fallback server's listener: it accepts the connections the fast
// path hands over.
type handoffListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	mu     sync.Mutex
	addr   net.Addr
}

func newHandoffListener() *handoffListener {
	return &handoffListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *handoffListener) deliver(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *handoffListener) setAddr(a net.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.addr == nil {
		l.addr = a
	}
}

func (l *handoffListener) Addr() net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.addr == nil {
		return &net.TCPAddr{}
	}
	return l.addr
}

// NetConn is the connection the fallback server was handed.
func (h *handoffConn) NetConn() net.Conn { return h.Conn }
