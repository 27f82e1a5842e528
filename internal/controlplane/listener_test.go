package controlplane

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestClosingListenerClosesAcceptedConnections(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newClosingListener(inner)
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()

	// One connection the server closes itself, one it leaves open.
	closedByServer, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer closedByServer.Close()
	(<-accepted).Close()
	idle, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	<-accepted

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := idle.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("reading an idle connection after the listener closed: got %v, want EOF", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) != 0 {
		t.Fatalf("listener still tracks %d connections after Close", len(l.conns))
	}
	if _, ok := <-accepted; ok {
		t.Fatal("Accept returned a connection after Close")
	}
}
