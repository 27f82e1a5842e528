// Package node is Gantry's serverless node: one Kubernetes Node, backed by this machine, that
// runs every pod bound to it alone in its own sandbox (internal/sandbox), the local
// equivalent of a Fargate microVM. It registers the Node and keeps its lease, turns each pod
// into a sandbox and containers, reports pod status, and serves the kubelet API that
// `kubectl logs` and `kubectl exec` use.
//
// Each pod has a worker (worker.go), the I/O half of its lifecycle: it observes the sandbox
// through the narrow Sandboxes and Images interfaces (runtime.go), asks pure decisions what
// to do — restart policy and back-off (decide.go), probe thresholds (probe.go), the order of
// termination (terminate.go), the pod's phase and status (status.go), the container spec
// (spec.go) — does it, and sleeps until the next thing is due. Time comes from an injected
// clock, so the decisions and the worker are tested without root, runc or an API server.
//
// An idle pod costs nothing: a worker wakes for a change of its pod, the exit of a container
// (a pidfd, exitwatch_linux.go), a probe at its period, a back-off, a storage measurement, or
// a resync once a minute; it writes the pod's status only when it changed, and the node
// writes its own status only when it changed or every five minutes, its liveness being the
// lease.
//
// It talks to the API server with client-go directly: virtual-kubelet v1.14 would force
// upgrades of grpc, OpenTelemetry and golang.org/x across the embedded control plane.
package node
