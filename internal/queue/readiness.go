package queue

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gantry-run/gantry/internal/queue/contract"
)

// How the user container is probed. Until its first success the probe runs every
// firstInterval: the user container starts beside the queue-proxy, and a cold start waits
// for the pod to be ready, so it is ready within 10 ms of its container listening. After
// that it runs every period (the probe's periodSeconds, else 1 s), and failureThreshold
// failures in a row (the probe's, else 3, as the kubelet's default) make the pod unready
// and the probing aggressive again, every aggressiveInterval, as Knative's queue-proxy
// probes when the probe has no period.
const (
	firstInterval           = 10 * time.Millisecond
	aggressiveInterval      = 50 * time.Millisecond
	aggressiveTimeout       = 100 * time.Millisecond
	defaultProbePeriod      = time.Second
	defaultProbeTimeout     = time.Second
	defaultFailureThreshold = 3
)

// Readiness is whether the pod should receive requests: the user container's readiness
// passed and the queue-proxy is not draining. It answers the pod's readiness probe on the
// admin port and Knative's probe header on the serving port.
type Readiness struct {
	check            func(ctx context.Context, timeout time.Duration) error
	period, timeout  time.Duration // between probes, and of each, once ready
	failureThreshold int

	userReady atomic.Bool
	draining  atomic.Bool
	firstPass chan struct{} // closed at the user container's first success
	passOnce  atomic.Bool
}

// NewReadiness probes the user container with probes (all must pass); none means a TCP
// connect to 127.0.0.1:userPort.
func NewReadiness(probes []*corev1.Probe, userPort int) *Readiness {
	r := &Readiness{period: defaultProbePeriod, timeout: defaultProbeTimeout, failureThreshold: defaultFailureThreshold, firstPass: make(chan struct{})}
	if len(probes) == 0 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(userPort))
		r.check = func(ctx context.Context, timeout time.Duration) error { return tcpCheck(ctx, addr, timeout) }
		return r
	}
	checks := make([]func(context.Context, time.Duration) error, 0, len(probes))
	for _, p := range probes {
		checks = append(checks, probeCheck(p, userPort))
		if p.PeriodSeconds > 0 {
			r.period = time.Duration(p.PeriodSeconds) * time.Second
		}
		if p.TimeoutSeconds > 0 {
			r.timeout = time.Duration(p.TimeoutSeconds) * time.Second
		}
		if p.FailureThreshold > 0 {
			r.failureThreshold = int(p.FailureThreshold)
		}
	}
	r.check = func(ctx context.Context, timeout time.Duration) error {
		for _, c := range checks {
			if err := c(ctx, timeout); err != nil {
				return err
			}
		}
		return nil
	}
	return r
}

// Ready reports whether the pod should receive requests now.
func (r *Readiness) Ready() bool { return r.userReady.Load() && !r.draining.Load() }

// Drain makes the pod unready for good: the first step of shutting down.
func (r *Readiness) Drain() { r.draining.Store(true) }

// FirstPass is closed once the user container has passed its probe.
func (r *Readiness) FirstPass() <-chan struct{} { return r.firstPass }

// Run probes the user container until ctx ends.
func (r *Readiness) Run(ctx context.Context) {
	failures := 0
	for {
		interval, timeout := r.cadence()
		err := r.check(ctx, timeout)
		switch {
		case err == nil:
			failures = 0
			r.userReady.Store(true)
			if r.passOnce.CompareAndSwap(false, true) {
				close(r.firstPass)
			}
		case r.userReady.Load():
			if failures++; failures >= r.failureThreshold {
				r.userReady.Store(false)
				failures = 0
			}
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// cadence is the time to the next probe of the user container and the bound of each.
func (r *Readiness) cadence() (interval, timeout time.Duration) {
	switch {
	case !r.passOnce.Load():
		return firstInterval, aggressiveTimeout
	case !r.userReady.Load():
		return aggressiveInterval, aggressiveTimeout
	}
	return r.period, r.timeout
}

// ServeHTTP answers a readiness probe: 200 "queue" when ready, 503 otherwise.
func (r *Readiness) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case r.draining.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "draining\n")
	case !r.userReady.Load():
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "user container not ready\n")
	default:
		_, _ = io.WriteString(w, contract.ProbeValue)
	}
}

func tcpCheck(ctx context.Context, addr string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("tcp probe of %s: %w", addr, err)
	}
	return c.Close()
}

// probeCheck is one of the user's probes: tcpSocket and httpGet as the kubelet runs them,
// exec and grpc as a TCP connect (the queue-proxy can run neither; Knative turns exec into
// TCP too). A port that is missing or named is the user port.
func probeCheck(p *corev1.Probe, userPort int) func(context.Context, time.Duration) error {
	port := func(ps intstr.IntOrString) string {
		if ps.Type == intstr.Int && ps.IntVal > 0 {
			return strconv.Itoa(int(ps.IntVal))
		}
		return strconv.Itoa(userPort)
	}
	host := func(h string) string {
		if h == "" {
			return "127.0.0.1"
		}
		return h
	}
	switch {
	case p.HTTPGet != nil:
		g := p.HTTPGet
		scheme := strings.ToLower(string(g.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		url := scheme + "://" + net.JoinHostPort(host(g.Host), port(g.Port)) + "/" + strings.TrimPrefix(g.Path, "/")
		client := &http.Client{Transport: &http.Transport{
			DisableKeepAlives:  true,
			DisableCompression: true,
			// The kubelet does not verify the certificate of an HTTPS probe either.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		}}
		return func(ctx context.Context, timeout time.Duration) error {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return fmt.Errorf("http probe of %s: %w", url, err)
			}
			req.Header.Set("User-Agent", "kube-probe/gantry")
			for _, h := range g.HTTPHeaders {
				req.Header.Add(h.Name, h.Value)
			}
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("http probe of %s: %w", url, err)
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
			_ = resp.Body.Close()
			if resp.StatusCode < 200 || resp.StatusCode >= 400 {
				return fmt.Errorf("http probe of %s: %w: %d", url, errProbeStatus, resp.StatusCode)
			}
			return nil
		}
	case p.TCPSocket != nil:
		addr := net.JoinHostPort(host(p.TCPSocket.Host), port(p.TCPSocket.Port))
		return func(ctx context.Context, timeout time.Duration) error { return tcpCheck(ctx, addr, timeout) }
	case p.GRPC != nil:
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p.GRPC.Port)))
		if p.GRPC.Port <= 0 {
			addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(userPort))
		}
		return func(ctx context.Context, timeout time.Duration) error { return tcpCheck(ctx, addr, timeout) }
	default:
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(userPort))
		return func(ctx context.Context, timeout time.Duration) error { return tcpCheck(ctx, addr, timeout) }
	}
}

var errProbeStatus = errors.New("unready status")
