// Package sizing gives a serverless pod its size, as EKS on Fargate does: the pod's request is
// the larger of its largest init container and the sum of its containers, for CPU and memory
// each; the node's memory overhead is added; the first size of the menu that holds it is the
// pod's. Ephemeral storage: a default, or the sum of the requests plus 10% plus 5 GiB, up to
// a maximum. The menu, the overhead and the storage bounds come from config-serverless. It is
// pure: the admission webhook feeds it the pod and the configuration.
package sizing

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gantry-run/gantry/pkg/apis/config"
	sv1alpha1 "github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// Storage overhead of a pod that requests ephemeral storage: its requests + 10% + 5 GiB.
const (
	storageOverheadPercent = 10
	storageOverheadBytes   = 5 << 30
)

// Requests is what a pod asks for: CPU in thousandths, memory and ephemeral storage in bytes.
type Requests struct {
	MilliCPU         int64
	MemoryBytes      int64
	EphemeralStorage int64
}

// PodRequests sums pod's requests as the scheduler does: the larger of the sum of its
// containers (with the restartable init containers, the sidecars, that run beside them) and
// each init container with the sidecars started before it. A container that sets a limit
// but no request asks for its limit, as Kubernetes defaults it.
func PodRequests(pod *corev1.Pod) Requests {
	var sum, sidecars, initMax Requests
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		r := containerRequests(c)
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars = sidecars.plus(r)
			initMax = initMax.max(sidecars)
			continue
		}
		initMax = initMax.max(sidecars.plus(r))
	}
	for i := range pod.Spec.Containers {
		sum = sum.plus(containerRequests(&pod.Spec.Containers[i]))
	}
	return sum.plus(sidecars).max(initMax)
}

func containerRequests(c *corev1.Container) Requests {
	get := func(name corev1.ResourceName) resource.Quantity {
		if q, ok := c.Resources.Requests[name]; ok {
			return q
		}
		return c.Resources.Limits[name]
	}
	cpu, mem, eph := get(corev1.ResourceCPU), get(corev1.ResourceMemory), get(corev1.ResourceEphemeralStorage)
	return Requests{MilliCPU: cpu.MilliValue(), MemoryBytes: mem.Value(), EphemeralStorage: eph.Value()}
}

func (r Requests) plus(o Requests) Requests {
	return Requests{r.MilliCPU + o.MilliCPU, r.MemoryBytes + o.MemoryBytes, r.EphemeralStorage + o.EphemeralStorage}
}

func (r Requests) max(o Requests) Requests {
	return Requests{max(r.MilliCPU, o.MilliCPU), max(r.MemoryBytes, o.MemoryBytes), max(r.EphemeralStorage, o.EphemeralStorage)}
}

// Size is what a serverless pod is given.
type Size struct {
	Capacity sv1alpha1.Capacity
	// EphemeralStorageBytes is its ephemeral storage.
	EphemeralStorageBytes int64
}

// EphemeralStorage is the storage as the quantity the pod's annotation carries ("20Gi").
func (s Size) EphemeralStorage() string {
	return resource.NewQuantity(s.EphemeralStorageBytes, resource.BinarySI).String()
}

// ForPod sizes pod under cfg (nil: the shipped sizing). A pod that fits no size, or asks for
// more storage than the maximum, gets an error that names the requests and the limit.
func ForPod(cfg *config.Serverless, pod *corev1.Pod) (Size, error) {
	if cfg == nil {
		cfg = config.NewServerless()
	}
	r := PodRequests(pod)
	c, err := Capacity(cfg, r)
	storage, serr := EphemeralStorage(cfg, r)
	if err != nil || serr != nil {
		var msgs []string
		for _, e := range []error{err, serr} {
			if e != nil {
				msgs = append(msgs, e.Error())
			}
		}
		return Size{}, fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return Size{Capacity: c, EphemeralStorageBytes: storage}, nil
}

// Capacity is the first size of the menu that holds r's CPU and r's memory plus the
// overhead.
func Capacity(cfg *config.Serverless, r Requests) (sv1alpha1.Capacity, error) {
	memMiB := (r.MemoryBytes+(1<<20)-1)>>20 + cfg.MemoryOverheadMiB
	for _, row := range cfg.Menu {
		if row.MilliCPU < r.MilliCPU {
			continue
		}
		for _, m := range row.MemoryMiB {
			if m >= memMiB {
				return sv1alpha1.Capacity{MilliCPU: row.MilliCPU, MemoryMiB: m}, nil
			}
		}
	}
	largest := cfg.Menu[len(cfg.Menu)-1]
	biggest := sv1alpha1.Capacity{MilliCPU: largest.MilliCPU, MemoryMiB: largest.MemoryMiB[len(largest.MemoryMiB)-1]}
	return sv1alpha1.Capacity{}, fmt.Errorf("spec.containers[*].resources.requests: cpu %s and memory %s (+ %dMi for the node) fit no serverless size (the largest is %s; config-serverless menu)",
		resource.NewMilliQuantity(r.MilliCPU, resource.DecimalSI), resource.NewQuantity(r.MemoryBytes, resource.BinarySI),
		cfg.MemoryOverheadMiB, biggest)
}

// EphemeralStorage is the storage a pod asking for r gets: the default without requests,
// else the requests + 10% + 5 GiB rounded up to a MiB, never less than the default; more
// than the maximum is an error.
func EphemeralStorage(cfg *config.Serverless, r Requests) (int64, error) {
	if r.EphemeralStorage <= 0 {
		return cfg.EphemeralStorageDefaultBytes, nil
	}
	want := r.EphemeralStorage // past any maximum already; the arithmetic below would overflow
	if r.EphemeralStorage <= cfg.EphemeralStorageMaxBytes {
		want += (r.EphemeralStorage*storageOverheadPercent+99)/100 + storageOverheadBytes
		want = (want + (1 << 20) - 1) &^ ((1 << 20) - 1)
	}
	if want > cfg.EphemeralStorageMaxBytes {
		return 0, fmt.Errorf("spec.containers[*].resources.requests.ephemeral-storage: %s needs %s with the 10%% + 5Gi overhead, more than the %s a serverless pod may have",
			resource.NewQuantity(r.EphemeralStorage, resource.BinarySI), resource.NewQuantity(want, resource.BinarySI),
			resource.NewQuantity(cfg.EphemeralStorageMaxBytes, resource.BinarySI))
	}
	return max(want, cfg.EphemeralStorageDefaultBytes), nil
}
