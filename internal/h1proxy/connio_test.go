package h1proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// connPair is a connected pair on loopback TCP or a unix socket: a, the side under test, and
// b, its peer.
func connPair(t *testing.T, network string) (a, b net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err = net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b = <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return a, b
}

func TestConnIOReadsAndWrites(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			a, b := connPair(t, network)
			c := newConnIO(a)
			if c.rc == nil {
				t.Fatalf("%T: no raw connection", a)
			}
			// A write larger than the socket's buffers completes while the peer reads.
			big := []byte(strings.Repeat("0123456789", 1<<20))
			got := make(chan []byte)
			go func() {
				b, _ := io.ReadAll(io.LimitReader(b, int64(len(big))))
				got <- b
			}()
			if n, err := c.Write(big); n != len(big) || err != nil {
				t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(big))
			}
			if b := <-got; string(b) != string(big) {
				t.Fatalf("the peer read %d bytes, not what was written", len(b))
			}
			// A read waits for what comes.
			go func() {
				time.Sleep(50 * time.Millisecond)
				_, _ = b.Write([]byte("hello"))
			}()
			buf := make([]byte, 16)
			if n, err := c.Read(buf); string(buf[:n]) != "hello" || err != nil {
				t.Fatalf("Read = %q, %v", buf[:n], err)
			}
			// A read is bound by the read deadline.
			_ = a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			var ne net.Error
			if _, err := c.Read(buf); !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("Read past the deadline: %v, want a timeout", err)
			}
			_ = a.SetReadDeadline(time.Time{})
			// The peer's close is io.EOF.
			_ = b.Close()
			if n, err := c.Read(buf); n != 0 || err != io.EOF { //nolint:errorlint // io.Reader's contract: io.EOF itself
				t.Fatalf("Read after the peer closed = %d, %v; want 0, EOF", n, err)
			}
			// Closing it wakes a read, as net.Conn's Close does.
			a2, _ := connPair(t, network)
			c2 := newConnIO(a2)
			go func() {
				time.Sleep(50 * time.Millisecond)
				_ = a2.Close()
			}()
			if _, err := c2.Read(buf); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Read of a closed connection: %v, want net.ErrClosed", err)
			}
		})
	}
}

// TestConnIOBoundsOnlyWritesThatWait: a write that fits the socket's buffer goes out whatever
// its bound, and a write that must wait (a peer that does not read) ends at it.
func TestConnIOBoundsOnlyWritesThatWait(t *testing.T) {
	a, _ := connPair(t, "tcp")
	c := newConnIO(a)
	c.boundWrites(time.Now().Add(-time.Second))
	if _, err := c.Write([]byte("small")); err != nil {
		t.Fatalf("a write that does not wait failed: %v", err)
	}
	if c.applied {
		t.Fatal("the bound was set on the connection for a write that did not wait")
	}
	c.boundWrites(time.Now().Add(100 * time.Millisecond))
	big := make([]byte, 64<<20)
	type result struct {
		n   int
		err error
	}
	wrote := make(chan result, 1)
	go func() {
		n, err := c.Write(big)
		wrote <- result{n, err}
	}()
	select {
	case r := <-wrote:
		var ne net.Error
		if !errors.As(r.err, &ne) || !ne.Timeout() || r.n >= len(big) {
			t.Fatalf("a write to a peer that does not read: %d bytes, %v; want a timeout", r.n, r.err)
		}
	case <-time.After(3 * time.Second):
		_ = a.Close()
		t.Fatal("a write bound to 100 ms still waited after 3 s")
	}
	c.boundWrites(time.Time{})
	if c.applied {
		t.Fatal("clearing the bound left it on the connection")
	}
}

// TestTotalBoundsAClientThatDoesNotRead: an answer larger than the sockets hold, to a client
// that does not read it, is cut at the Forward's Total (the writes to the client are bound).
func TestTotalBoundsAClientThatDoesNotRead(t *testing.T) {
	body := strings.Repeat("x", 64<<20)
	up, _ := upstreamServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, body)
	}))
	done := make(chan int, 1)
	_, addr := start(t, &route{addr: up, done: done, prepare: func(_ *Request, f *Forward) { f.Total = 300 * time.Millisecond }})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	select {
	case status := <-done:
		if status != http.StatusOK {
			t.Errorf("Done got %d, want 200 (the answer began)", status)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the answer to a client that does not read outlived its Total")
	}
	// The connection was cut: reading it all ends well short of the body.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _ := io.Copy(io.Discard, c)
	if n >= int64(len(body)) {
		t.Errorf("the client read %d bytes: the whole answer", n)
	}
}
