package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probeKind names a container's probe.
type probeKind string

const (
	probeStartup   probeKind = "startup"
	probeLiveness  probeKind = "liveness"
	probeReadiness probeKind = "readiness"
)

// probeUserAgent is what HTTP and gRPC probes present, as the kubelet's.
const probeUserAgent = "kube-probe/1.37"

type probeResult int

const (
	probePending probeResult = iota // not due, or a threshold not reached yet: no change
	probePassed                     // successThreshold successes in a row
	probeFailed                     // failureThreshold failures in a row
)

// probeState counts one probe's consecutive results against its thresholds and says when it
// is due.
type probeState struct {
	next      time.Time
	successes int32
	failures  int32
}

// newProbeState is the state of probe p of a container that started at started: its first
// run is due after the probe's initial delay.
func newProbeState(p *corev1.Probe, started time.Time) *probeState {
	return &probeState{next: started.Add(time.Duration(p.InitialDelaySeconds) * time.Second)}
}

// due reports whether the probe is to run at now.
func (ps *probeState) due(now time.Time) bool { return !now.Before(ps.next) }

// record counts one result of p taken at now and schedules the next run after interval. It
// returns probePassed once p.SuccessThreshold runs in a row have succeeded, probeFailed once
// p.FailureThreshold runs in a row have failed (and on every further failure), and
// probePending in between; zero thresholds count as 1.
func (ps *probeState) record(p *corev1.Probe, ok bool, now time.Time, interval time.Duration) probeResult {
	ps.next = now.Add(interval)
	if ok {
		ps.successes, ps.failures = ps.successes+1, 0
		if ps.successes >= max(p.SuccessThreshold, 1) {
			return probePassed
		}
		return probePending
	}
	ps.successes, ps.failures = 0, ps.failures+1
	if ps.failures >= max(p.FailureThreshold, 1) {
		return probeFailed
	}
	return probePending
}

// probePeriod is the interval between runs of p: its periodSeconds, at least a second (the API
// server defaults it to 10 s).
func probePeriod(p *corev1.Probe) time.Duration {
	return time.Duration(max(p.PeriodSeconds, 1)) * time.Second
}

// probeTimeout bounds one run of p: its timeoutSeconds, at least a second.
func probeTimeout(p *corev1.Probe) time.Duration {
	return time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
}

// readinessInterval is when a readiness probe of a container that started at started runs
// next: at once (startingPeriod) while the container has not been ready yet and started less
// than startWindow ago, else at the probe's period.
func readinessInterval(p *corev1.Probe, everReady bool, started, now time.Time) time.Duration {
	if d, ok := startingPeriod(started, now); ok && !everReady {
		return d
	}
	return probePeriod(p)
}

// prober runs probes from the host: HTTP GET, TCP and gRPC against the pod's address, exec in
// the container through the sandbox.
type prober struct {
	http *http.Client
	exec func(ctx context.Context, argv []string) (int, error)
}

// probeDialer dials the connections of HTTP and TCP probes, as the kubelet's ProbeDialer:
// SO_LINGER of a second, so the many short connections of probes do not linger a minute in
// TIME-WAIT, while what is pending is still sent and closed with a FIN.
var probeDialer = &net.Dialer{
	Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptLinger(int(fd), syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 1})
		})
		return errors.Join(err, serr)
	},
}

var probeHTTPClient = &http.Client{
	// A probe opens a connection of its own each time, as the kubelet's do.
	Transport: &http.Transport{DisableKeepAlives: true, DialContext: probeDialer.DialContext},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// check runs p once against container c at ip, within ctx.
func (pr prober) check(ctx context.Context, ip string, c *corev1.Container, p *corev1.Probe) error {
	switch {
	case p.HTTPGet != nil:
		port, err := resolvePort(p.HTTPGet.Port, c)
		if err != nil {
			return err
		}
		return pr.checkHTTP(ctx, ip, port, p.HTTPGet)
	case p.TCPSocket != nil:
		port, err := resolvePort(p.TCPSocket.Port, c)
		if err != nil {
			return err
		}
		host := ip
		if p.TCPSocket.Host != "" {
			host = p.TCPSocket.Host
		}
		conn, err := probeDialer.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("tcp probe: %w", err)
		}
		return conn.Close()
	case p.Exec != nil:
		code, err := pr.exec(ctx, p.Exec.Command)
		if err != nil {
			return fmt.Errorf("exec probe: %w", err)
		}
		if code != 0 {
			return fmt.Errorf("exec probe: command exited with %d", code)
		}
		return nil
	case p.GRPC != nil:
		service := ""
		if p.GRPC.Service != nil {
			service = *p.GRPC.Service
		}
		return checkGRPC(ctx, net.JoinHostPort(ip, strconv.Itoa(int(p.GRPC.Port))), service)
	}
	return errors.New("probe has no handler")
}

func (pr prober) checkHTTP(ctx context.Context, ip string, port int, g *corev1.HTTPGetAction) error {
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	host := ip
	if g.Host != "" {
		host = g.Host
	}
	url := fmt.Sprintf("%s://%s%s", scheme, net.JoinHostPort(host, strconv.Itoa(port)), g.Path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("http probe: %w", err)
	}
	req.Header.Set("User-Agent", probeUserAgent)
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Set(h.Name, h.Value)
	}
	client := pr.http
	if client == nil {
		client = probeHTTPClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("http probe: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("http probe failed with statuscode: %d", resp.StatusCode)
	}
	return nil
}

// checkGRPC asks the gRPC health service at addr (grpc.health.v1.Health/Check) about service
// ("" for the server as a whole); only SERVING passes, as the kubelet's gRPC probe.
func checkGRPC(ctx context.Context, addr, service string) error {
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUserAgent(probeUserAgent))
	if err != nil {
		return fmt.Errorf("grpc probe of %s: %w", addr, err)
	}
	defer func() { _ = conn.Close() }()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return fmt.Errorf("grpc probe of %s: %w", addr, err)
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("grpc probe of %s: service %q is %s", addr, service, st)
	}
	return nil
}

func resolvePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("port %q is not a port of container %s", p.StrVal, c.Name)
}
