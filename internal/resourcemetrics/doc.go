// Package resourcemetrics is the resource metrics API of the serverless node
// (metrics.k8s.io/v1beta1, what metrics-server serves in other clusters): the CPU and memory
// each running pod, each of its containers and the node use, so that `kubectl top` works and
// the HorizontalPodAutoscaler controller can scale on CPU and memory.
//
// The sampler reads the pods' cgroups (internal/sandbox's Usage) every few seconds and keeps a
// short history; CPU is the rate of the cumulative CPU time over a window, memory the working
// set of the newest sample, as the kubelet and metrics-server report them. The server is an
// aggregated API: an APIService (v1beta1.metrics.k8s.io) names a Service in gantry-system
// whose EndpointSlice points at this process's TLS listener, and the API server's aggregator,
// which has already authenticated and authorized the caller, proxies to it as
// front-proxy-client. The server accepts no other client.
package resourcemetrics
