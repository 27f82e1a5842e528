// Package hpa is the autoscaler of class hpa.autoscaling.knative.dev: for each PodAutoscaler
// of that class it keeps an autoscaling/v2 HorizontalPodAutoscaler, owned by the
// PodAutoscaler, on the revision's Deployment (the embedded kube-controller-manager's HPA
// controller scales it, on the CPU and memory figures of metrics.k8s.io, which
// internal/resourcemetrics serves), and reports the HPA's scale in the PodAutoscaler's
// status. The HPA is built by a pure function of the PodAutoscaler (MakeHPA), following
// Knative's rules: at least one pod (an HPA cannot scale to zero), a CPU target in percent of
// the pods' requests, a memory target in MiB per pod.
package hpa
