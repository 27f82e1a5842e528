package queue

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/tracing"
)

// Config is the queue-proxy's configuration, read from the environment the revision's
// Deployment sets (contract.Env*).
type Config struct {
	ServingPort int // contract.EnvServingPort, default contract.HTTPPort; HTTP/1.1 and h2c
	H2CPort     int // contract.EnvH2CPort, default none; the same, on Knative's h2c port
	// Socket is contract.EnvSocket: a unix socket that serves what ServingPort serves, ""
	// for none.
	Socket          string
	AdminPort       int // contract.EnvAdminPort, default contract.AdminPort; readiness
	MetricsPort     int // contract.EnvMetricsPort, default contract.MetricsPort; autoscaler stats
	UserMetricsPort int // contract.UserMetricsPort; Prometheus request metrics
	UserPort        int // contract.EnvUserPort, default 8080

	// UserProtocol is contract.EnvUserPortProtocol: contract.UserProtocolH2C, "http1", or ""
	// (HTTP/1.1 unless the request came in over HTTP/2).
	UserProtocol string

	// ContainerConcurrency is the most requests the user container gets at once; 0 is
	// unlimited. Up to 10 × that many more wait in the queue.
	ContainerConcurrency int

	// Timeout bounds a whole request; ResponseStartTimeout the time to the first byte of the
	// response (0: only Timeout); IdleTimeout the time without a byte written (0: none). A
	// request that times out before its first byte gets 504; after it, its stream is cut.
	Timeout, ResponseStartTimeout, IdleTimeout time.Duration

	// ReadinessProbes check the user container; none means a TCP connect to UserPort.
	ReadinessProbes []*corev1.Probe

	// DrainTimeout bounds shutdown, from the signal until the last request in flight ended:
	// the revision's timeout. QuietPeriod is how long no new request must arrive, after
	// readiness failed, before the serving port stops accepting connections.
	DrainTimeout, QuietPeriod time.Duration

	// Who this pod is: labels of the metrics.
	Namespace, Service, Configuration, Revision, Pod string

	// TracingEndpoint, when set, is the OTLP/HTTP endpoint of the queue-proxy's spans;
	// TracingSamplingRatio the share of the traces it starts itself that it records.
	TracingEndpoint      string
	TracingSamplingRatio float64
}

// Defaults used when the environment does not say.
const (
	defaultUserPort = 8080
	// defaultTimeout is Knative's revision-timeout-seconds default.
	defaultTimeout = 300 * time.Second
	// defaultQuietPeriod is long enough for the gateway and the activator, which watch the
	// pod's readiness, to stop sending; Knative waits 30 s for load balancers of a whole
	// cluster.
	defaultQuietPeriod = 2 * time.Second
	// queueDepthFactor × containerConcurrency requests may wait for a slot, as in Knative: time
	// for the autoscaler to react.
	queueDepthFactor = 10
)

// ConfigFromEnv reads the queue-proxy's environment; a malformed value names its variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		ServingPort:     contract.HTTPPort,
		AdminPort:       contract.AdminPort,
		MetricsPort:     contract.MetricsPort,
		UserMetricsPort: contract.UserMetricsPort,
		UserPort:        defaultUserPort,
		Timeout:         defaultTimeout,
		QuietPeriod:     defaultQuietPeriod,
		UserProtocol:    getenv(contract.EnvUserPortProtocol),
		Socket:          getenv(contract.EnvSocket),
		Namespace:       getenv(contract.EnvNamespace),
		Service:         getenv(contract.EnvService),
		Configuration:   getenv(contract.EnvConfiguration),
		Revision:        getenv(contract.EnvRevision),
		Pod:             getenv(contract.EnvPod),
	}
	for _, v := range []struct {
		name string
		dst  *int
	}{
		{contract.EnvServingPort, &c.ServingPort},
		{contract.EnvH2CPort, &c.H2CPort},
		{contract.EnvAdminPort, &c.AdminPort},
		{contract.EnvMetricsPort, &c.MetricsPort},
		{contract.EnvUserPort, &c.UserPort},
	} {
		if s := getenv(v.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 65535 {
				return Config{}, fmt.Errorf("%s: %q is not a port", v.name, s)
			}
			*v.dst = n
		}
	}
	if s := getenv(contract.EnvContainerConcurrency); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return Config{}, fmt.Errorf("%s: %q is not a concurrency (0 or more)", contract.EnvContainerConcurrency, s)
		}
		c.ContainerConcurrency = n
	}
	for _, v := range []struct {
		name string
		dst  *time.Duration
	}{
		{contract.EnvTimeoutSeconds, &c.Timeout},
		{contract.EnvResponseStartTimeout, &c.ResponseStartTimeout},
		{contract.EnvIdleTimeoutSeconds, &c.IdleTimeout},
	} {
		if s := getenv(v.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return Config{}, fmt.Errorf("%s: %q is not a number of seconds", v.name, s)
			}
			*v.dst = time.Duration(n) * time.Second
		}
	}
	if c.Timeout == 0 {
		c.Timeout = defaultTimeout // Knative defaults a revision's timeout of 0 too
	}
	if c.Socket != "" && !filepath.IsAbs(c.Socket) {
		return Config{}, fmt.Errorf("%s: %q is not an absolute path", contract.EnvSocket, c.Socket)
	}
	switch c.UserProtocol {
	case "", "http1", contract.UserProtocolH2C:
	default:
		return Config{}, fmt.Errorf("%s: %q is neither %q nor %q", contract.EnvUserPortProtocol, c.UserProtocol, "http1", contract.UserProtocolH2C)
	}
	if s := getenv(contract.EnvReadinessProbe); s != "" {
		probes, err := decodeProbes(s)
		if err != nil {
			return Config{}, fmt.Errorf("%s: %w", contract.EnvReadinessProbe, err)
		}
		c.ReadinessProbes = probes
	}
	if c.TracingEndpoint = getenv(contract.EnvTracingEndpoint); c.TracingEndpoint != "" {
		if _, err := tracing.ParseEndpoint(c.TracingEndpoint); err != nil {
			return Config{}, fmt.Errorf("%s: %w", contract.EnvTracingEndpoint, err)
		}
		c.TracingSamplingRatio = 1
	}
	if s := getenv(contract.EnvTracingSamplingRatio); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 || f > 1 {
			return Config{}, fmt.Errorf("%s: %q is not a ratio between 0 and 1", contract.EnvTracingSamplingRatio, s)
		}
		c.TracingSamplingRatio = f
	}
	c.DrainTimeout = c.Timeout
	return c, nil
}

// decodeProbes reads Knative's encoding of readiness probes: one corev1.Probe as JSON, or a
// JSON list of them.
func decodeProbes(s string) ([]*corev1.Probe, error) {
	if strings.HasPrefix(strings.TrimSpace(s), "[") {
		var ps []*corev1.Probe
		if err := json.Unmarshal([]byte(s), &ps); err != nil {
			return nil, fmt.Errorf("decoding probes: %w", err)
		}
		return ps, nil
	}
	var p corev1.Probe
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return nil, fmt.Errorf("decoding probe: %w", err)
	}
	return []*corev1.Probe{&p}, nil
}
