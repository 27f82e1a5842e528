package config

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gantry-run/gantry/internal/queue/contract"
)

// Deployment are the values of Knative's config-deployment ConfigMap: how a Revision becomes
// a Deployment.
type Deployment struct {
	// QueueSidecarImage is the image of the queue-proxy container. The default is the sentinel
	// the serverless node runs from the gantry binary; cluster mode names a real image.
	QueueSidecarImage string
	// ProgressDeadline bounds how long a Revision may take to become ready.
	ProgressDeadline time.Duration
	// DigestResolutionTimeout bounds the resolution of one image tag to a digest.
	DigestResolutionTimeout time.Duration
	// RegistriesSkippingTagResolving are registries whose tags are used as they are.
	RegistriesSkippingTagResolving []string
	// QueueSidecarCPURequest is the queue-proxy's CPU request (25m).
	QueueSidecarCPURequest resource.Quantity
	// The queue-proxy's other requests and limits; zero means unset.
	QueueSidecarCPULimit      resource.Quantity
	QueueSidecarMemoryRequest resource.Quantity
	QueueSidecarMemoryLimit   resource.Quantity

	// QueueTracingEndpoint and QueueTracingSamplingRatio are the queue-proxy's tracing: the
	// OTLP/HTTP endpoint of its spans (empty: off) and the share of the traces it starts that
	// it records. They are no keys of config-deployment: the server sets them from its own
	// flags (--otlp-endpoint).
	QueueTracingEndpoint      string
	QueueTracingSamplingRatio float64
}

// DefaultQueueSidecarImage is the image the serverless node recognises as the queue-proxy.
const DefaultQueueSidecarImage = contract.Image

// NewDeployment returns the defaults Knative ships, with Gantry's queue-proxy image.
func NewDeployment() *Deployment {
	return &Deployment{
		QueueSidecarImage:              DefaultQueueSidecarImage,
		ProgressDeadline:               600 * time.Second,
		DigestResolutionTimeout:        10 * time.Second,
		RegistriesSkippingTagResolving: []string{"kind.local", "ko.local", "dev.local"},
		QueueSidecarCPURequest:         resource.MustParse("25m"),
	}
}

// NewDeploymentFromMap reads the data of a config-deployment ConfigMap; a malformed value or an
// unknown key is an error naming the key.
func NewDeploymentFromMap(data map[string]string) (*Deployment, error) {
	d := NewDeployment()
	p := newParser(data)
	p.string("queue-sidecar-image", &d.QueueSidecarImage)
	p.duration("progress-deadline", &d.ProgressDeadline)
	p.duration("digest-resolution-timeout", &d.DigestResolutionTimeout)
	if v, ok := p.value("registries-skipping-tag-resolving"); ok {
		d.RegistriesSkippingTagResolving = nil
		for r := range strings.SplitSeq(v, ",") {
			if r = strings.TrimSpace(r); r != "" {
				d.RegistriesSkippingTagResolving = append(d.RegistriesSkippingTagResolving, r)
			}
		}
	}
	for _, q := range []struct {
		key string
		dst *resource.Quantity
	}{
		{"queue-sidecar-cpu-request", &d.QueueSidecarCPURequest},
		{"queue-sidecar-cpu-limit", &d.QueueSidecarCPULimit},
		{"queue-sidecar-memory-request", &d.QueueSidecarMemoryRequest},
		{"queue-sidecar-memory-limit", &d.QueueSidecarMemoryLimit},
	} {
		if v, ok := p.value(q.key); ok {
			qty, err := resource.ParseQuantity(v)
			if err != nil || qty.Sign() < 0 {
				p.failf(q.key, "%q is not a quantity (e.g. 25m, 64Mi)", v)
				continue
			}
			*q.dst = qty
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	switch {
	case d.ProgressDeadline <= 0:
		return nil, fmt.Errorf("progress-deadline: %v must be positive", d.ProgressDeadline)
	case d.ProgressDeadline.Truncate(time.Second) != d.ProgressDeadline:
		return nil, fmt.Errorf("progress-deadline: %v must be whole seconds", d.ProgressDeadline)
	case d.DigestResolutionTimeout <= 0:
		return nil, fmt.Errorf("digest-resolution-timeout: %v must be positive", d.DigestResolutionTimeout)
	}
	return d, nil
}
