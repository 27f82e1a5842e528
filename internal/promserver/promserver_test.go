package promserver

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestServesTheRegistry(t *testing.T) {
	s, err := New("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "gantry_test_gauge", Help: "A test gauge."})
	s.Registry.MustRegister(g)
	g.Set(42)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	<-s.Ready()
	resp, err := http.Get("http://" + s.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"gantry_test_gauge 42", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stop: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not stop")
	}
	if _, err := New(s.Addr(), Options{}); err != nil {
		t.Fatalf("the address is still taken after stop: %v", err)
	}
}

func TestAddressInUse(t *testing.T) {
	s, err := New("127.0.0.1:0", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.ln.Close()
	if _, err := New(s.Addr(), Options{}); err == nil || !strings.Contains(err.Error(), "--metrics-address") {
		t.Fatalf("a second server on %s: got %v, want an error naming --metrics-address", s.Addr(), err)
	}
}

func TestProfilingOnlyWhenAsked(t *testing.T) {
	for _, on := range []bool{false, true} {
		s, err := New("127.0.0.1:0", Options{Profiling: on})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Start(ctx) }()
		<-s.Ready()
		resp, err := http.Get("http://" + s.Addr() + "/debug/pprof/heap")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[on]; resp.StatusCode != want {
			t.Errorf("profiling %v: /debug/pprof/heap answered %d, want %d", on, resp.StatusCode, want)
		}
		cancel()
		<-done
	}
}
