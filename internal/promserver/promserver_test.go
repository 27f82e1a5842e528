package promserver

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
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

// TestComponents serves two component registries at ComponentsPath, apart from /metrics:
// each one's families are served, one both have (the Go runtime's) once, so the scrape does
// not fail on a duplicate; /metrics keeps to the server's registry.
func TestComponents(t *testing.T) {
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	for i, name := range []string{"apiserver_test_total", "etcd_test_total"} {
		regs[i].MustRegister(collectors.NewGoCollector())
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: "A component's counter."})
		regs[i].MustRegister(c)
		c.Add(3)
	}
	s, err := New("127.0.0.1:0", Options{Components: []prometheus.Gatherer{regs[0], regs[1]}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Start(ctx) }()
	<-s.Ready()
	get := func(path string) string {
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
		}
		return string(body)
	}
	comp := get(ComponentsPath)
	for _, want := range []string{"apiserver_test_total 3", "etcd_test_total 3"} {
		if !strings.Contains(comp, want) {
			t.Errorf("%s lacks %q", ComponentsPath, want)
		}
	}
	if n := strings.Count(comp, "# TYPE go_goroutines "); n != 1 {
		t.Errorf("%s has go_goroutines %d times", ComponentsPath, n)
	}
	if own := get("/metrics"); strings.Contains(own, "apiserver_test_total") {
		t.Error("/metrics serves a component's metric")
	}
}
