// Package node is Gantry's serverless node: one Kubernetes Node, backed by this machine, that
// runs every pod bound to it alone in its own sandbox (internal/sandbox), the local
// equivalent of a Fargate microVM. It registers the Node and keeps its lease, turns each pod
// into a sandbox and containers, reports pod status, and serves the kubelet API that
// `kubectl logs` uses.
//
// It talks to the API server with client-go directly: virtual-kubelet v1.14 would force
// upgrades of grpc, OpenTelemetry and golang.org/x across the embedded control plane.
package node
