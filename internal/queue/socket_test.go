package queue

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The serving port's requests are also served on the socket, by the same server (the fast
// path and the chain), and what comes through it is from the pod's default gateway.
func TestServesTheSocket(t *testing.T) {
	seen := make(chan string, 2)
	port := startUser(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("X-Forwarded-For")
		_, _ = io.WriteString(w, "hello")
	}))
	dir := t.TempDir()
	sock := filepath.Join(dir, "queue.sock")
	if err := os.WriteFile(sock, nil, 0o600); err != nil { // a previous run's leftover
		t.Fatal(err)
	}
	routes := filepath.Join(dir, "route")
	if err := os.WriteFile(routes, []byte("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"+
		"eth0\t00000000\t0100F40A\t0003\t0\t0\t0\t00000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	q, err := New(testConfig(port), nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := listenSocketRoutes(sock, routes)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("socket file: %v, %v; want a socket of mode 0600", fi.Mode(), err)
	}
	s := q.servingServer()
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })

	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	for _, method := range []string{http.MethodGet, http.MethodPost} { // the fast path, and the chain
		req, _ := http.NewRequest(method, "http://hello.default.localhost/", strings.NewReader(""))
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "hello" {
			t.Fatalf("%s through the socket: %d %q", method, resp.StatusCode, body)
		}
		if xff := <-seen; xff != "203.0.113.7, 10.244.0.1" {
			t.Errorf("%s: X-Forwarded-For = %q, want the pod's gateway appended", method, xff)
		}
	}
}

func TestConfigRefusesARelativeSocket(t *testing.T) {
	env := map[string]string{"QUEUE_SOCKET": "queue.sock"}
	if _, err := ConfigFromEnv(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "QUEUE_SOCKET") {
		t.Errorf("ConfigFromEnv = %v; want an error naming QUEUE_SOCKET", err)
	}
}
