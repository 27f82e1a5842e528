// Package controlplane runs a Kubernetes control plane inside the calling process, as k3s does:
// an embedded etcd, kube-apiserver, kube-controller-manager and kube-scheduler, each in its
// goroutines, sharing one context. It generates the PKI and kubeconfigs on first start, reports
// readiness once the API server answers /readyz, and stops the components in reverse order.
//
// The three Kubernetes components install process-wide state (logging, feature gates, configz,
// metrics registries), so one process runs at most one control plane.
package controlplane
