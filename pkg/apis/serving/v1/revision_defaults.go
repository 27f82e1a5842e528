package v1

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gantry-run/gantry/pkg/apis/config"
)

// DefaultUserPort is the port the user container listens on when its spec
// names none; the platform passes it in $PORT.
const DefaultUserPort int32 = 8080

// SetDefaults fills the unset fields of the Revision's spec.
func (r *Revision) SetDefaults(ctx context.Context) {
	r.Spec.SetDefaults(ctx)
}

// SetDefaults fills the unset fields of the template's spec.
func (rts *RevisionTemplateSpec) SetDefaults(ctx context.Context) {
	rts.Spec.SetDefaults(ctx)
}

// SetDefaults fills timeouts, container concurrency, container names, the
// serving container's port and readiness probe, and read-only mounts of
// configuration volumes, from the config-defaults carried by ctx.
func (rs *RevisionSpec) SetDefaults(ctx context.Context) {
	d := config.FromContextOrDefaults(ctx).Defaults

	if rs.TimeoutSeconds == nil {
		rs.TimeoutSeconds = ptr(d.RevisionTimeoutSeconds)
	}
	if rs.ResponseStartTimeoutSeconds == nil && d.RevisionResponseStartTimeoutSeconds > 0 {
		rs.ResponseStartTimeoutSeconds = ptr(d.RevisionResponseStartTimeoutSeconds)
	}
	if rs.IdleTimeoutSeconds == nil && d.RevisionIdleTimeoutSeconds > 0 {
		rs.IdleTimeoutSeconds = ptr(d.RevisionIdleTimeoutSeconds)
	}
	if rs.ContainerConcurrency == nil {
		rs.ContainerConcurrency = ptr(d.ContainerConcurrency)
	}
	if rs.EnableServiceLinks == nil && d.EnableServiceLinks != nil {
		rs.EnableServiceLinks = ptr(*d.EnableServiceLinks)
	}

	readOnly := readOnlyVolumes(rs.Volumes)
	serving := servingContainerIndex(rs.Containers)
	for i := range rs.Containers {
		c := &rs.Containers[i]
		if c.Name == "" {
			c.Name = d.ContainerName(i, len(rs.Containers))
		}
		if i == serving {
			defaultServingContainer(c)
		}
		defaultVolumeMounts(c.VolumeMounts, readOnly)
	}
	for i := range rs.InitContainers {
		c := &rs.InitContainers[i]
		if c.Name == "" {
			c.Name = initContainerName(d, i, len(rs.InitContainers))
		}
		defaultVolumeMounts(c.VolumeMounts, readOnly)
	}
}

func initContainerName(d *config.Defaults, index, count int) string {
	if count <= 1 {
		return d.InitContainerName
	}
	return (&config.Defaults{UserContainerName: d.InitContainerName}).ContainerName(index, count)
}

// servingContainerIndex returns the index of the container that receives
// requests: the only one, or the only one declaring a port. It returns -1
// when that is ambiguous (validation reports it).
func servingContainerIndex(cs []corev1.Container) int {
	if len(cs) == 1 {
		return 0
	}
	found := -1
	for i := range cs {
		if len(cs[i].Ports) == 0 {
			continue
		}
		if found >= 0 {
			return -1
		}
		found = i
	}
	return found
}

// userPort is the port the serving container listens on.
func userPort(c *corev1.Container) int32 {
	if len(c.Ports) > 0 && c.Ports[0].ContainerPort != 0 {
		return c.Ports[0].ContainerPort
	}
	return DefaultUserPort
}

func defaultServingContainer(c *corev1.Container) {
	if len(c.Ports) == 0 {
		c.Ports = []corev1.ContainerPort{{ContainerPort: DefaultUserPort}}
	}
	if c.ReadinessProbe == nil {
		c.ReadinessProbe = &corev1.Probe{}
	}
	p := c.ReadinessProbe
	h := p.ProbeHandler
	if h.HTTPGet == nil && h.TCPSocket == nil && h.Exec == nil && h.GRPC == nil {
		p.TCPSocket = &corev1.TCPSocketAction{Port: intstr.FromInt32(userPort(c))}
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
}

// readOnlyVolumes names the volumes whose content comes from the API
// (secrets, config maps, projections): their mounts are read-only.
func readOnlyVolumes(vs []corev1.Volume) map[string]bool {
	out := map[string]bool{}
	for _, v := range vs {
		if v.Secret != nil || v.ConfigMap != nil || v.Projected != nil {
			out[v.Name] = true
		}
	}
	return out
}

func defaultVolumeMounts(ms []corev1.VolumeMount, readOnly map[string]bool) {
	for i := range ms {
		if readOnly[ms[i].Name] {
			ms[i].ReadOnly = true
		}
	}
}

func ptr[T any](v T) *T { return &v }
