package kubeproxy

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

func TestRelayPassesBytesAndCutsThemOnClose(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); _ = c.Close() }()
		}
	}()
	r, err := newRelay(echo.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("watch\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "watch\n" {
		t.Fatalf("through the relay: %q, %v", line, err)
	}

	r.Close()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the relayed connection is still open after Close")
	}
	if c2, err := net.DialTimeout("tcp", r.Addr(), time.Second); err == nil {
		c2.Close()
		t.Error("the relay accepts after Close")
	}
}
