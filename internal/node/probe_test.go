package node

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func TestProbeThresholds(t *testing.T) {
	const P, F, W = probePassed, probeFailed, probePending
	for _, tt := range []struct {
		name             string
		success, failure int32
		results          []bool
		want             []probeResult
	}{
		{name: "defaults: one success passes, one failure fails", results: []bool{true, false, true}, want: []probeResult{P, F, P}},
		{name: "failure threshold 3", failure: 3, success: 1,
			results: []bool{true, false, false, true, false, false, false, false},
			want:    []probeResult{P, W, W, P, W, W, F, F}},
		{name: "success threshold 2", failure: 1, success: 2,
			results: []bool{true, true, true, false, true, false, true, true},
			want:    []probeResult{W, P, P, F, W, F, W, P}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &corev1.Probe{SuccessThreshold: tt.success, FailureThreshold: tt.failure, PeriodSeconds: 10}
			ps := newProbeState(p, t0)
			now := t0
			for i, ok := range tt.results {
				if got := ps.record(p, ok, now, probePeriod(p)); got != tt.want[i] {
					t.Errorf("result %d (%v): %d, want %d", i, ok, got, tt.want[i])
				}
				now = now.Add(probePeriod(p))
			}
		})
	}
}

func TestProbeSchedule(t *testing.T) {
	p := &corev1.Probe{InitialDelaySeconds: 5, PeriodSeconds: 3}
	ps := newProbeState(p, t0)
	for _, tt := range []struct {
		at   time.Duration
		want bool
	}{{0, false}, {4999 * time.Millisecond, false}, {5 * time.Second, true}} {
		if got := ps.due(t0.Add(tt.at)); got != tt.want {
			t.Errorf("due %s after the start = %v, want %v (initial delay 5s)", tt.at, got, tt.want)
		}
	}
	ps.record(p, true, t0.Add(5*time.Second), probePeriod(p))
	if ps.due(t0.Add(7*time.Second)) || !ps.due(t0.Add(8*time.Second)) {
		t.Errorf("next run at %s, want 3s (the period) after the last", ps.next.Sub(t0))
	}
	if got := probePeriod(&corev1.Probe{}); got != time.Second {
		t.Errorf("period of a probe without one = %s, want at least a second", got)
	}
}

func TestReadinessInterval(t *testing.T) {
	p := &corev1.Probe{PeriodSeconds: 10}
	for _, tt := range []struct {
		everReady bool
		since     time.Duration
		want      time.Duration
	}{
		{false, 0, firstPeriod},
		{false, firstWindow - time.Millisecond, firstPeriod},
		{false, firstWindow, startPeriod},
		{false, startWindow - time.Millisecond, startPeriod},
		{false, startWindow, 10 * time.Second}, // a container that is slow to be ready is probed at its period
		{true, time.Second, 10 * time.Second},
	} {
		if got := readinessInterval(p, tt.everReady, t0, t0.Add(tt.since)); got != tt.want {
			t.Errorf("readinessInterval(ever ready %v, %s after the start) = %s, want %s", tt.everReady, tt.since, got, tt.want)
		}
	}
}

// grpcHealthServer serves grpc.health.v1 on a loopback port.
func grpcHealthServer(t *testing.T) (*health.Server, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return hs, ln.Addr().(*net.TCPAddr).Port
}

func TestGRPCProbe(t *testing.T) {
	hs, port := grpcHealthServer(t)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("ok", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	_ = closed.Close()

	for _, tt := range []struct {
		name    string
		port    int
		service *string
		wantErr string
	}{
		{name: "server serving", port: port},
		{name: "service serving", port: port, service: ptr.To("ok")},
		{name: "service not serving", port: port, service: ptr.To("down"), wantErr: "NOT_SERVING"},
		{name: "unknown service", port: port, service: ptr.To("nope"), wantErr: "NotFound"},
		{name: "nothing listening", port: closedPort, wantErr: "Unavailable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(tt.port), Service: tt.service}}}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := prober{}.check(ctx, "127.0.0.1", &corev1.Container{Name: "app"}, p)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("check: %v, want it to pass", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("check: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}

	// A server that stops serving fails the probe.
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: int32(port)}}}
	if err := (prober{}).check(context.Background(), "127.0.0.1", &corev1.Container{}, p); err == nil {
		t.Error("check passed against a server that is NOT_SERVING")
	}
}

func TestHTTPAndTCPProbes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("User-Agent") != probeUserAgent || r.Header.Get("X-Probe") != "yes" || r.Host != "example.test" {
			http.Error(w, "unexpected request", http.StatusTeapot)
			return
		}
		switch r.URL.Path {
		case "/healthy":
		case "/moved":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		default:
			http.Error(w, "sick", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	_, portStr, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	c := &corev1.Container{Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}
	httpGet := func(path string) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http"),
			HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Probe", Value: "yes"}, {Name: "Host", Value: "example.test"}}}}}
	}
	for _, tt := range []struct {
		name string
		p    *corev1.Probe
		ok   bool
	}{
		{"2xx passes", httpGet("/healthy"), true},
		{"3xx passes, not followed", httpGet("/moved"), true},
		{"5xx fails", httpGet("/sick"), false},
		{"tcp open port", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt(port)}}}, true},
		{"unknown named port", &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("nope")}}}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := prober{}.check(context.Background(), "127.0.0.1", c, tt.p)
			if (err == nil) != tt.ok {
				t.Errorf("check: %v, want pass %v", err, tt.ok)
			}
		})
	}
}
