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
// and runs the queue-proxy from the gantry binary itself inside the pod's network namespace,
// so nothing is pulled. In cluster mode the serving options name a real image built from this
// repository instead.
const Image = "gantry.dev/queue-proxy"

// Args are the arguments of the gantry binary (or the image's entrypoint) that run the
// queue-proxy.
var Args = []string{"queue-proxy"}

// BinaryPath is where the node binds the gantry binary inside the sidecar's empty root.
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

// Port names on the sidecar and the revision's Service.
const (
	HTTPPortName    = "queue-port"
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
	EnvNamespace            = "SERVING_NAMESPACE"
	EnvService              = "SERVING_SERVICE"
	EnvConfiguration        = "SERVING_CONFIGURATION"
	EnvRevision             = "SERVING_REVISION"
	EnvPod                  = "SERVING_POD"
	EnvPodIP                = "SERVING_POD_IP"
	EnvServingPort          = "QUEUE_SERVING_PORT"
	EnvAdminPort            = "QUEUE_ADMIN_PORT"
	EnvMetricsPort          = "QUEUE_METRICS_PORT"
	EnvUserPort             = "USER_PORT"
	EnvContainerConcurrency = "CONTAINER_CONCURRENCY"
	EnvTimeoutSeconds       = "REVISION_TIMEOUT_SECONDS"
	EnvResponseStartTimeout = "REVISION_RESPONSE_START_TIMEOUT_SECONDS"
	EnvIdleTimeoutSeconds   = "REVISION_IDLE_TIMEOUT_SECONDS"
)

// IsSidecar reports whether c is the queue-proxy that the serverless node runs from its own
// binary: the sidecar's name with the default image.
func IsSidecar(c *corev1.Container) bool {
	return c.Name == ContainerName && c.Image == Image
}
