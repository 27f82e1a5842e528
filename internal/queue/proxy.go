package queue

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"time"

	"github.com/gantry-run/gantry/internal/h1transport"
	"github.com/gantry-run/gantry/internal/queue/contract"
)

// newProxy forwards requests to the user container on 127.0.0.1:userPort. Its costs are
// chosen for one upstream under load: an idle pool as large as the concurrency (Go keeps 2
// idle connections per host by default, so most requests would dial anew), copy buffers
// from a pool, no transparent compression, and FlushInterval 0, which still flushes every
// write of a streamed response (no Content-Length, or text/event-stream) at once.
func newProxy(userPort int, protocol string, concurrency int, log *slog.Logger) *httputil.ReverseProxy {
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(userPort))
	idle := 1000 // Knative's choice for unlimited concurrency
	if concurrency > 0 {
		idle = concurrency
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = target
			// Rewrite dropped the forwarding headers; keep the client's, and append the
			// peer to X-Forwarded-For.
			for _, k := range [...]string{"Forwarded", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				if v, ok := pr.In.Header[k]; ok {
					pr.Out.Header[k] = v
				}
			}
			pr.Out.Header["X-Forwarded-For"] = proxyForwardedFor(pr.In)
			if h := pr.In.Header[contract.OriginalHostHeader]; len(h) > 0 && h[0] != "" {
				pr.Out.Host = h[0]
				delete(pr.Out.Header, contract.OriginalHostHeader)
			}
		},
		Transport:     newUserTransport(protocol, idle),
		FlushInterval: 0,
		BufferPool:    bufferPool{},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				// A timeout answers for itself, and a client that left hears nothing.
				return
			}
			log.WarnContext(r.Context(), "proxying to the user container", "path", r.URL.Path, "err", err)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "queue-proxy: error reaching the user container\n")
		},
	}
}

// newUserTransport is the transport to the user container: HTTP/1.1, h2c, or (protocol "")
// whichever the request came in with, as Knative's queue-proxy does.
func newUserTransport(protocol string, idle int) http.RoundTripper {
	switch protocol {
	case contract.UserProtocolH2C:
		return newTransport(true, idle)
	case "http1":
		return newH1Transport(idle)
	}
	return &autoTransport{h1: newH1Transport(idle), h2c: newTransport(true, idle)}
}

// newH1Transport sends simple requests in the handler's goroutine (h1transport), the rest
// through net/http's Transport.
func newH1Transport(idle int) http.RoundTripper {
	fallback := newTransport(false, idle)
	return &h1transport.Transport{Fallback: fallback, DialContext: fallback.DialContext,
		MaxIdlePerHost: idle, IdleTimeout: fallback.IdleConnTimeout}
}

func newTransport(h2c bool, idle int) *http.Transport {
	t := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          idle,
		MaxIdleConnsPerHost:   idle,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
	}
	if h2c {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		t.Protocols = &p
	}
	return t
}

// autoTransport speaks h2c to the user container for a request that came in over HTTP/2,
// HTTP/1.1 otherwise.
type autoTransport struct{ h1, h2c http.RoundTripper }

func (t *autoTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.ProtoMajor == 2 {
		return t.h2c.RoundTrip(r)
	}
	return t.h1.RoundTrip(r)
}

// bufferPool lends the proxy 32 KiB copy buffers instead of allocating one per response.
type bufferPool struct{}

const copyBufferSize = 32 << 10

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

func (bufferPool) Get() []byte { return *copyBuffers.Get().(*[]byte) }

func (bufferPool) Put(b []byte) {
	if cap(b) == copyBufferSize {
		b = b[:copyBufferSize]
		copyBuffers.Put(&b)
	}
}
