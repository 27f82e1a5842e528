package activator

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"

	"github.com/gantry-run/gantry/internal/h1transport"
	"github.com/gantry-run/gantry/internal/queue/contract"
)

// target is where one request goes: a pod's queue-proxy.
type target struct {
	addr string
	h2c  bool
	// proxied marks the request as the activator's for the queue-proxy, which then leaves
	// it out of its own stats (the activator reports it).
	proxied bool
}

type targetKey struct{}

func withTarget(ctx context.Context, t target) context.Context {
	return context.WithValue(ctx, targetKey{}, t)
}

// newProxy forwards to the target in the request's context. The transports keep many idle
// connections per pod (Go's default of 2 makes a busy proxy dial for most requests), never
// compress, and copy through pooled buffers. dial connects to pods (nil: TCP).
func newProxy(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *httputil.ReverseProxy {
	if dial == nil {
		dial = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	h1 := &http.Transport{
		DialContext:         dial,
		MaxIdleConns:        1000,
		MaxIdleConnsPerHost: 100,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	h2c := h1.Clone()
	h2c.Protocols = new(http.Protocols)
	h2c.Protocols.SetUnencryptedHTTP2(true)
	// Simple requests are sent in the handler's goroutine (h1transport), the rest by h1.
	inline := &h1transport.Transport{Fallback: h1, DialContext: h1.DialContext,
		MaxIdlePerHost: h1.MaxIdleConnsPerHost, IdleTimeout: h1.IdleConnTimeout}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			t, _ := pr.In.Context().Value(targetKey{}).(target)
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = t.addr
			// The gateway set the forwarding headers (Rewrite drops Forwarded and X-Forwarded-*
			// from the outgoing request); keep them and the client's Host.
			pr.Out.Host = pr.In.Host
			// The queue-proxy counts what came through the activator apart (the activator
			// reports that demand to the autoscaler itself) while the activator is in the path.
			// Only the activator says so: a client's own mark would hide its load.
			pr.Out.Header.Del(contract.ProxyHeader)
			if t.proxied {
				pr.Out.Header.Set(contract.ProxyHeader, contract.ActivatorProxy)
			}
			for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				if v, ok := pr.In.Header[h]; ok {
					pr.Out.Header[h] = v
				}
			}
		},
		Transport: roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			if t, _ := r.Context().Value(targetKey{}).(target); t.h2c {
				return h2c.RoundTrip(r)
			}
			return inline.RoundTrip(r)
		}),
		BufferPool: bufferPool{},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away
			}
			http.Error(w, "activator: pod: "+err.Error(), http.StatusBadGateway)
		},
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// bufferPool lends the proxy's 32 KiB copy buffers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
