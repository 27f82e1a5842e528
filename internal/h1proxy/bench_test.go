package h1proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gantry-run/gantry/internal/proccpu"
)

// BenchmarkForward: one client connection sending requests one after another through the
// fast path to an upstream that answers from a raw socket.
func BenchmarkForward(b *testing.B) {
	s, c := benchServer(b)
	c(loopbackClient(b, func(ln net.Listener) { _ = s.Serve(ln) }))
}

// BenchmarkForwardPassed: the same on a connection passed to the hop, with the fields the
// gateway sets on it (connpass's Rewrite).
func BenchmarkForwardPassed(b *testing.B) {
	s, c := benchServer(b)
	c(loopbackClient(b, func(ln net.Listener) {
		if nc, err := ln.Accept(); err == nil {
			s.ServePassed(nc, nil, benchPassed())
		}
	}))
}

// loopbackClient listens on loopback, gives the listener to serve and returns a connection
// to it.
func loopbackClient(b *testing.B, serve func(net.Listener)) net.Conn {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	go serve(ln)
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = nc.Close() })
	return nc
}

// BenchmarkForwardPassedPipe: BenchmarkForwardPassed over in-memory pipes instead of sockets,
// without the system calls: what is left is the hop's own work per request, which varies far
// less from run to run.
func BenchmarkForwardPassedPipe(b *testing.B) {
	s, c := benchServer(b)
	s.Dial = func(context.Context, string, string) (net.Conn, error) {
		here, there := net.Pipe()
		go answerHello(there, bufio.NewReader(there))
		return here, nil
	}
	here, there := net.Pipe()
	defer here.Close()
	s.ServePassed(there, nil, benchPassed())
	c(here)
}

func benchPassed() *Passed {
	return &Passed{
		Host: "hello.default.example.com",
		Peer: "10.0.0.1:40000",
		Rewrite: func(r *Request, f *Forward) {
			f.Drop("K-Proxy-Request")
			f.Set("Knative-Serving-Namespace", "default")
			f.Set("Knative-Serving-Revision", "hello-00001")
			f.Set("X-Forwarded-For", "192.0.2.1")
			f.Set("X-Forwarded-Proto", "http")
			f.Set("Forwarded", "for=192.0.2.1;host="+r.Host+";proto=http")
			f.Set("K-Original-Host", r.Host)
		},
		Until:  time.Now().Add(time.Hour),
		Return: func(net.Conn, []byte, bool) bool { return false },
		Served: func(int, time.Duration) {},
	}
}

// answerHello answers each request on c with a hello, as the test image does.
func answerHello(c net.Conn, br *bufio.Reader) {
	for {
		raw, err := peekHead(br)
		if err != nil {
			return
		}
		_, _ = br.Discard(len(raw))
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello World!\n"); err != nil {
			return
		}
	}
}

// benchServer starts a Server towards an upstream that answers from a raw socket, with a
// Handler doing what the queue-proxy's does to a request; client then sends requests one after
// another on a connection to it, b.N of them, and reports the hop's allocations.
func benchServer(b *testing.B) (*Server, func(net.Conn)) {
	up := rawUpstream(b, answerHello)
	rt := &route{addr: up, prepare: func(r *Request, f *Forward) {
		if h := r.Get("K-Original-Host"); h != "" {
			f.Host = h
			f.Drop("K-Original-Host")
		}
		if !r.Has("Forwarded") {
			f.Set("Forwarded", "for="+r.RemoteAddr)
		}
		f.Set("X-Forwarded-For", strings.Join(append(r.Values("X-Forwarded-For"), r.RemoteAddr), ", "))
		f.Began = time.Now()
		f.Total = time.Minute
		f.Done = func(int) {}
	}}
	s := &Server{Handler: rt, Fallback: &http.Server{Handler: http.NotFoundHandler()}, IdleTimeout: time.Minute}
	b.Cleanup(func() { _ = s.Close() })
	return s, func(c net.Conn) {
		br := bufio.NewReader(c)
		req := []byte("GET /hello HTTP/1.1\r\nHost: hello.default.example.com\r\n\r\n")
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := proccpu.Used()
		defer func() {
			// The process's CPU time: the client's and the upstream's part is the same
			// from one build to another, what changes is the hop's.
			b.ReportMetric(float64((proccpu.Used()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		}()
		for range b.N {
			if _, err := c.Write(req); err != nil {
				b.Fatal(err)
			}
			raw, err := peekHead(br)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := br.Discard(len(raw) + 13); err != nil {
				b.Fatal(err)
			}
		}
	}
}
