// Package contract is the one owner of the queue-proxy contract: the sidecar's name, its
// default image, its command, the ports it serves, the user it runs as, and the environment
// the revision's Deployment hands it. The revision reconciler writes the contract into pods,
// the serverless node recognises the sidecar by it, the queue-proxy reads its configuration
// through it, and validation refuses user containers that would collide with it. It imports
// nothing but the Kubernetes core types, so every side can use it cheaply.
package contract

import corev1 "k8s.io/api/core/v1"

// ContainerName is the sidecar's name in every revision pod; user containers may not use it.
const ContainerName = "queue-proxy"

// Image is the default image of the queue-proxy container. The serverless node recognises it
// and runs the queue-proxy from a binary of the host (the queue-proxy's own, which gantry
// carries, else the gantry binary) inside the pod's network namespace, so nothing is pulled.
// In cluster mode the serving options name a real image built from this repository instead.
const Image = "gantry.dev/queue-proxy"

// Args are the arguments of that binary (or the image's entrypoint) that run the
// queue-proxy.
var Args = []string{"queue-proxy"}

// BinaryPath is where the node binds the queue-proxy's binary (internal/qpbin) or the gantry
// binary inside the sidecar's empty root.
const BinaryPath = "/gantry"

// UID is the unprivileged user the queue-proxy runs as (the distroless "nonroot" user).
const UID = 65532

// The queue-proxy's ports, as Knative's.
const (
	HTTPPort        = 8012 // requests, HTTP/1
	H2CPort         = 8013 // requests, h2c
	AdminPort       = 8022 // readiness and drain
	MetricsPort     = 9090 // autoscaler stats
	UserMetricsPort = 9091 // Prometheus metrics
	ProfilingPort   = 8008 // reserved, as in Knative
)

// The queue-proxy's socket: on the serverless node (runc pods) the node mounts a directory of
// the pod's own at SocketDir into the sidecar's container only, and sets EnvSocket to
// SocketDir/SocketName. The queue-proxy then also serves its HTTPPort's requests on that unix
// socket, and the gateway and activator of the same machine reach the pod through it instead
// of through the pod network (veth, bridge, netfilter and two TCP stacks per message). What
// arrives there is treated as coming from the pod's default gateway, the address the host's
// TCP connections come from, so the app sees the same X-Forwarded-For either way.
//
// Beside it, PassSocketName (a SOCK_SEQPACKET socket) takes the client connections the
// gateway passes to the queue-proxy (internal/connpass).
const (
	SocketDir      = "/var/run/gantry-queue"
	SocketName     = "queue.sock"
	PassSocketName = "pass.sock"
)

// Port names on the sidecar and the revision's Service.
const (
	HTTPPortName    = "queue-port"
	H2CPortName     = "h2c"
	AdminPortName   = "http-queueadm"
	MetricsPortName = "http-autometric"
)

// ReservedPorts are the ports the queue-proxy takes in every pod; a user container may not
// declare one.
var ReservedPorts = map[int32]bool{
	HTTPPort:        true,
	H2CPort:         true,
	AdminPort:       true,
	MetricsPort:     true,
	UserMetricsPort: true,
	ProfilingPort:   true,
}

// The environment the revision's Deployment sets on the sidecar.
const (
	EnvNamespace     = "SERVING_NAMESPACE"
	EnvService       = "SERVING_SERVICE"
	EnvConfiguration = "SERVING_CONFIGURATION"
	EnvRevision      = "SERVING_REVISION"
	EnvPod           = "SERVING_POD"
	EnvPodIP         = "SERVING_POD_IP"
	EnvServingPort   = "QUEUE_SERVING_PORT"
	// EnvH2CPort, set for a revision whose port is named h2c, is a second serving port,
	// Knative's h2c port (H2CPort), where the Gateway API backends of such a revision send.
	EnvH2CPort = "QUEUE_H2C_PORT"
	// EnvSocket, set by the serverless node, is the unix socket the queue-proxy also serves
	// its serving port's requests on (SocketDir).
	EnvSocket               = "QUEUE_SOCKET"
	EnvAdminPort            = "QUEUE_ADMIN_PORT"
	EnvMetricsPort          = "QUEUE_METRICS_PORT"
	EnvUserPort             = "USER_PORT"
	EnvContainerConcurrency = "CONTAINER_CONCURRENCY"
	EnvTimeoutSeconds       = "REVISION_TIMEOUT_SECONDS"
	EnvResponseStartTimeout = "REVISION_RESPONSE_START_TIMEOUT_SECONDS"
	EnvIdleTimeoutSeconds   = "REVISION_IDLE_TIMEOUT_SECONDS"
	// EnvUserPortProtocol is how the queue-proxy speaks to the user container: UserProtocolH2C
	// when the user port is named "h2c", else unset (HTTP/1.1, or h2c for a request that came in
	// over HTTP/2, as Knative's queue-proxy does).
	EnvUserPortProtocol = "USER_PORT_PROTOCOL"
	// EnvReadinessProbe is the user container's readiness probe as JSON (a corev1.Probe, or a
	// list of them), as Knative's SERVING_READINESS_PROBE; unset means a TCP connect to the
	// user port. tcpSocket and httpGet are honoured; exec becomes a TCP connect, as in Knative.
	EnvReadinessProbe = "SERVING_READINESS_PROBE"
	// EnvTracingEndpoint is the OTLP/HTTP endpoint the queue-proxy sends its spans to; unset
	// turns its tracing off. EnvTracingSamplingRatio is the share of traces it starts itself
	// (a request with a trace context follows its caller's decision).
	EnvTracingEndpoint      = "TRACING_ENDPOINT"
	EnvTracingSamplingRatio = "TRACING_SAMPLING_RATIO"
)

// UserProtocolH2C is the EnvUserPortProtocol value for a user container that speaks h2c.
const UserProtocolH2C = "h2c"

// ReadinessPath on the admin port answers 200 while the pod should receive requests: the user
// container's readiness passed and the queue-proxy is not draining; 503 otherwise. The pod's
// readiness probe is an HTTP GET of this path on AdminPort.
const ReadinessPath = "/"

// Headers of the data plane, with Knative's names and values.
const (
	// ProbeHeader with the value ProbeValue, on a request to the serving port, is answered by
	// the queue-proxy itself with its readiness (200 "queue" or 503), never forwarded.
	ProbeHeader = "K-Network-Probe"
	ProbeValue  = "queue"
	// ProxyHeader names the proxy a request came through; the activator sets ActivatorProxy,
	// and the queue-proxy counts such requests as proxied (not as direct demand) in its stats.
	ProxyHeader    = "K-Proxy-Request"
	ActivatorProxy = "activator"
	// OriginalHostHeader, when set, is the Host the user container sees; the queue-proxy moves
	// it back into Host and drops the header.
	OriginalHostHeader = "K-Original-Host"
)

// IsSidecar reports whether c is the queue-proxy that the serverless node runs from its own
// binary: the sidecar's name with the default image.
func IsSidecar(c *corev1.Container) bool {
	return c.Name == ContainerName && c.Image == Image
}
