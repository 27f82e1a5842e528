package queue

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func adminStatus(t *testing.T, r *Readiness) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	return rec.Code, rec.Body.String()
}

func TestReadinessPassesOnceTheUserPortListens(t *testing.T) {
	port := freePort(t)
	r := NewReadiness(nil, port)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)

	time.Sleep(150 * time.Millisecond) // probes fail
	if code, _ := adminStatus(t, r); code != http.StatusServiceUnavailable {
		t.Fatalf("before the user port listens: %d, want 503", code)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Skipf("the free port was taken meanwhile: %v", err)
	}
	defer l.Close()
	listening := time.Now()
	<-r.FirstPass()
	if took := time.Since(listening); took > 500*time.Millisecond {
		t.Errorf("ready %v after the port listened, want about 10 ms (first-pass probing)", took)
	}
	if code, body := adminStatus(t, r); code != http.StatusOK || body != "queue" {
		t.Errorf("after: %d %q, want 200 \"queue\"", code, body)
	}

	r.Drain()
	if code, body := adminStatus(t, r); code != http.StatusServiceUnavailable || body != "draining\n" {
		t.Errorf("draining: %d %q, want 503", code, body)
	}
}

func TestReadinessProbesFastestUntilTheFirstPass(t *testing.T) {
	r := NewReadiness(nil, 1)
	r.period, r.timeout = 5*time.Second, 2*time.Second
	if i, to := r.cadence(); i != firstInterval || to != aggressiveTimeout {
		t.Errorf("before the first pass: every %s, bound %s; want %s, %s", i, to, firstInterval, aggressiveTimeout)
	}
	r.passOnce.Store(true)
	r.userReady.Store(true)
	if i, to := r.cadence(); i != 5*time.Second || to != 2*time.Second {
		t.Errorf("ready: every %s, bound %s; want the probe's period and timeout", i, to)
	}
	r.userReady.Store(false)
	if i, to := r.cadence(); i != aggressiveInterval || to != aggressiveTimeout {
		t.Errorf("unready after a pass: every %s, bound %s; want %s, %s", i, to, aggressiveInterval, aggressiveTimeout)
	}
}

func TestReadinessFailsAfterFailureThresholdFailures(t *testing.T) {
	var up atomic.Bool
	up.Store(true)
	r := NewReadiness(nil, 1)
	r.check = func(context.Context, time.Duration) error {
		if up.Load() {
			return nil
		}
		return errProbeStatus
	}
	r.period = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	<-r.FirstPass()
	up.Store(false)
	waitFor(t, "unready after 3 failures", func() bool { return !r.Ready() })
	up.Store(true)
	waitFor(t, "ready again", r.Ready)
}

func TestReadinessRunsTheUsersHTTPProbe(t *testing.T) {
	var healthy atomic.Bool
	port := startUser(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || r.Header.Get("X-Probe") != "yes" {
			http.NotFound(w, r)
			return
		}
		if !healthy.Load() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	}))
	r := NewReadiness([]*corev1.Probe{{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
		Path: "healthz", Port: intstr.FromInt32(int32(port)), HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Probe", Value: "yes"}},
	}}}}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	time.Sleep(120 * time.Millisecond)
	if r.Ready() {
		t.Fatal("ready while the probe answers 503")
	}
	healthy.Store(true)
	waitFor(t, "ready once the probe answers 200", r.Ready)
}

func TestReadinessTurnsExecIntoTCP(t *testing.T) {
	port := freePort(t)
	check := probeCheck(&corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}, port)
	if err := check(context.Background(), 100*time.Millisecond); err == nil {
		t.Error("exec probe passed with nothing on the user port")
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Skipf("the free port was taken meanwhile: %v", err)
	}
	defer l.Close()
	if err := check(context.Background(), 100*time.Millisecond); err != nil {
		t.Errorf("exec probe with the user port listening: %v", err)
	}
}
