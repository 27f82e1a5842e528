package controlplane

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/component-base/metrics/legacyregistry"
)

// MetricsGatherers are the registries the embedded components register their metrics in:
// Kubernetes' legacy registry (the API server, the controller-manager, the scheduler) and
// Prometheus's default one (etcd and its gRPC server). They are process-wide, as the
// components run in this process.
func MetricsGatherers() []prometheus.Gatherer {
	return []prometheus.Gatherer{legacyregistry.DefaultGatherer, prometheus.DefaultGatherer}
}
