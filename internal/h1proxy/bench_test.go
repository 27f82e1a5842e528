package h1proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
)

// BenchmarkForward: one client connection sending requests one after another through the
// fast path to an upstream that answers from a raw socket; reports the hop's allocations.
func BenchmarkForward(b *testing.B) {
	up := rawUpstream(b, func(c net.Conn, br *bufio.Reader) {
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
	})
	rt := &route{addr: up, prepare: func(r *Request, f *Forward) {
		f.Set("X-Forwarded-For", r.RemoteAddr)
		f.Done = func(int) {}
	}}
	s := &Server{Handler: rt, Fallback: &http.Server{Handler: http.NotFoundHandler()}}
	pl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = s.Serve(pl) }()
	defer s.Close()
	c, err := net.Dial("tcp", pl.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	req := []byte("GET /hello HTTP/1.1\r\nHost: hello.default.example.com\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	b.ReportAllocs()
	b.ResetTimer()
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
