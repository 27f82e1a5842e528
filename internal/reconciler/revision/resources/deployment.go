// Package resources builds the children of a Revision: the Deployment that runs it (user
// containers plus the queue-proxy), the Kubernetes Service the data plane reaches it by, and
// the PodAutoscaler that asks the autoscaler to scale it.
package resources

import (
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/internal/reconciler/kmeta"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	"github.com/gantry-run/gantry/pkg/apis/config"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

const defaultUserPort = 8080

// drainGraceSeconds is the grace a stopping pod gets beyond the revision's timeout.
const drainGraceSeconds = 10

// DeploymentName is the name of the Deployment of rev.
func DeploymentName(rev *servingv1.Revision) string { return rev.Name + "-deployment" }

// PodLabels are the labels of rev's pods and other children; RevisionUID selects them. The
// routing state, which the route reconciler changes on the revision, is left out: a change of
// it must not roll the pods.
func PodLabels(rev *servingv1.Revision) map[string]string {
	own := kmeta.FilterMap(rev.Labels, func(k string) bool { return k == servingv1.RoutingStateLabelKey })
	return kmeta.UnionMaps(own, map[string]string{
		servingv1.RevisionLabelKey: rev.Name,
		servingv1.RevisionUID:      string(rev.UID),
		"app":                      rev.Name,
	})
}

// routingAnnotations are what the route reconciler records on a revision about the routes
// that send it traffic; they describe the revision, not its pods.
var routingAnnotations = map[string]bool{
	servingv1.RoutesAnnotationKey:               true,
	servingv1.RoutingStateModifiedAnnotationKey: true,
	servingv1.RevisionLastPinnedAnnotationKey:   true,
}

// childAnnotations are the annotations rev hands to its children: its own, but kubectl's record
// and the routing ones, so that routing a revision does not roll its pods.
func childAnnotations(rev *servingv1.Revision) map[string]string {
	return kmeta.FilterMap(kmeta.PropagatedAnnotations(rev.Annotations), func(k string) bool { return routingAnnotations[k] })
}

func selector(rev *servingv1.Revision) map[string]string {
	return map[string]string{servingv1.RevisionUID: string(rev.UID)}
}

// userReadinessPeriod is the period of the serving container's readiness probe, or the
// kubelet's default of 10 s.
func userReadinessPeriod(rev *servingv1.Revision) int32 {
	c := rev.Spec.Containers[servingContainer(rev)]
	if c.ReadinessProbe != nil && c.ReadinessProbe.PeriodSeconds > 0 {
		return c.ReadinessProbe.PeriodSeconds
	}
	return 10
}

// userPortName is the name of the serving container's port ("h2c", "http1" or empty).
func userPortName(rev *servingv1.Revision) string {
	for _, c := range rev.Spec.Containers {
		if len(c.Ports) > 0 && c.Ports[0].ContainerPort != 0 {
			return c.Ports[0].Name
		}
	}
	return ""
}

// H2C says whether rev speaks h2c: its serving container's port is named h2c.
func H2C(rev *servingv1.Revision) bool { return userPortName(rev) == contract.UserProtocolH2C }

// UserPort is the port the serving container listens on.
func UserPort(rev *servingv1.Revision) int32 {
	for _, c := range rev.Spec.Containers {
		if len(c.Ports) > 0 && c.Ports[0].ContainerPort != 0 {
			return c.Ports[0].ContainerPort
		}
	}
	return defaultUserPort
}

// servingContainer is the index of the container that receives requests.
func servingContainer(rev *servingv1.Revision) int {
	for i, c := range rev.Spec.Containers {
		if len(c.Ports) > 0 {
			return i
		}
	}
	return 0
}

// InitialReplicas is the scale a new Revision starts at: its initial-scale annotation, else
// config-autoscaler's initial-scale (1 as shipped); at least its min-scale (the annotation,
// else config-autoscaler's min-scale).
func InitialReplicas(rev *servingv1.Revision, as *config.Autoscaler) int32 {
	n := annotationInt(rev.Annotations, autoscaling.InitialScaleAnnotationKey, as.InitialScale)
	return max(n, annotationInt(rev.Annotations, autoscaling.MinScaleAnnotationKey, as.MinScale))
}

func annotationInt(ann map[string]string, key string, def int32) int32 {
	if v, ok := ann[key]; ok {
		if n, err := strconv.ParseInt(v, 10, 32); err == nil && n >= 0 {
			return int32(n)
		}
	}
	return def
}

// MakeDeployment is the Deployment that runs rev under cfg: the queue-proxy and progress
// deadline of config-deployment, the initial scale of config-autoscaler. Images are the
// digests recorded in rev's status, so the revision runs the exact image it was created with.
func MakeDeployment(rev *servingv1.Revision, cfg *config.Config) *appsv1.Deployment {
	podSpec := *rev.Spec.PodSpec.DeepCopy()
	digests := map[string]string{}
	for _, cs := range rev.Status.ContainerStatuses {
		digests[cs.Name] = cs.ImageDigest
	}
	serving := servingContainer(rev)
	for i := range podSpec.Containers {
		c := &podSpec.Containers[i]
		if d := digests[c.Name]; d != "" {
			c.Image = d
		}
		c.Env = append(c.Env, runtimeEnv(rev)...)
		if i == serving {
			c.Env = append([]corev1.EnvVar{{Name: "PORT", Value: strconv.Itoa(int(UserPort(rev)))}}, c.Env...)
		}
	}
	podSpec.Containers = append(podSpec.Containers, queueProxy(rev, cfg.Deployment))
	if podSpec.EnableServiceLinks == nil {
		podSpec.EnableServiceLinks = ptr.To(false)
	}
	// A request may run for the whole timeout; a stopping pod lets it finish, with time on top
	// for the queue-proxy's drain (it waits for requests to stop arriving) and the user
	// containers' own stop.
	podSpec.TerminationGracePeriodSeconds = ptr.To(ptr.Deref(rev.Spec.TimeoutSeconds, 300) + drainGraceSeconds)

	labels := PodLabels(rev)
	annotations := childAnnotations(rev)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:            DeploymentName(rev),
			Namespace:       rev.Namespace,
			Labels:          labels,
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{kmeta.OwnerRef(rev, rev.GetGroupVersionKind())},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas:                ptr.To(InitialReplicas(rev, cfg.Autoscaler)),
			Selector:                &metav1.LabelSelector{MatchLabels: selector(rev)},
			ProgressDeadlineSeconds: ptr.To(annotationInt(rev.Annotations, servingv1.ProgressDeadlineAnnotationKey, int32(cfg.Deployment.ProgressDeadline/time.Second))),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec:       podSpec,
			},
		},
	}
}

// runtimeEnv is the runtime contract's environment: who this revision is.
func runtimeEnv(rev *servingv1.Revision) []corev1.EnvVar {
	return []corev1.EnvVar{
		{Name: "K_REVISION", Value: rev.Name},
		{Name: "K_CONFIGURATION", Value: rev.Labels[servingv1.ConfigurationLabelKey]},
		{Name: "K_SERVICE", Value: rev.Labels[servingv1.ServiceLabelKey]},
	}
}

func queueProxy(rev *servingv1.Revision, cfg *config.Deployment) corev1.Container {
	timeout := ptr.Deref(rev.Spec.TimeoutSeconds, 300)
	fieldRef := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
	}
	env := []corev1.EnvVar{
		{Name: contract.EnvNamespace, Value: rev.Namespace},
		{Name: contract.EnvService, Value: rev.Labels[servingv1.ServiceLabelKey]},
		{Name: contract.EnvConfiguration, Value: rev.Labels[servingv1.ConfigurationLabelKey]},
		{Name: contract.EnvRevision, Value: rev.Name},
		{Name: contract.EnvPod, ValueFrom: fieldRef("metadata.name")},
		{Name: contract.EnvPodIP, ValueFrom: fieldRef("status.podIP")},
		{Name: contract.EnvServingPort, Value: strconv.Itoa(contract.HTTPPort)},
		{Name: contract.EnvAdminPort, Value: strconv.Itoa(contract.AdminPort)},
		{Name: contract.EnvMetricsPort, Value: strconv.Itoa(contract.MetricsPort)},
		{Name: contract.EnvUserPort, Value: strconv.Itoa(int(UserPort(rev)))},
		{Name: contract.EnvContainerConcurrency, Value: strconv.FormatInt(ptr.Deref(rev.Spec.ContainerConcurrency, 0), 10)},
		{Name: contract.EnvTimeoutSeconds, Value: strconv.FormatInt(timeout, 10)},
		{Name: contract.EnvResponseStartTimeout, Value: strconv.FormatInt(ptr.Deref(rev.Spec.ResponseStartTimeoutSeconds, 0), 10)},
		{Name: contract.EnvIdleTimeoutSeconds, Value: strconv.FormatInt(ptr.Deref(rev.Spec.IdleTimeoutSeconds, 0), 10)},
	}
	ports := []corev1.ContainerPort{
		{Name: contract.AdminPortName, ContainerPort: contract.AdminPort},
		{Name: contract.MetricsPortName, ContainerPort: contract.MetricsPort},
		{Name: contract.HTTPPortName, ContainerPort: contract.HTTPPort},
	}
	if userPortName(rev) == contract.UserProtocolH2C {
		// Knative's h2c port too, where the Gateway API backends send (see internal/gatewayapi).
		env = append(env, corev1.EnvVar{Name: contract.EnvUserPortProtocol, Value: contract.UserProtocolH2C},
			corev1.EnvVar{Name: contract.EnvH2CPort, Value: strconv.Itoa(contract.H2CPort)})
		ports = append(ports, corev1.ContainerPort{Name: contract.H2CPortName, ContainerPort: contract.H2CPort})
	}
	if cfg.QueueTracingEndpoint != "" {
		env = append(env,
			corev1.EnvVar{Name: contract.EnvTracingEndpoint, Value: cfg.QueueTracingEndpoint},
			corev1.EnvVar{Name: contract.EnvTracingSamplingRatio, Value: strconv.FormatFloat(cfg.QueueTracingSamplingRatio, 'g', -1, 64)})
	}
	res := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	for _, q := range []struct {
		list corev1.ResourceList
		name corev1.ResourceName
		qty  resource.Quantity
	}{
		{res.Requests, corev1.ResourceCPU, cfg.QueueSidecarCPURequest},
		{res.Requests, corev1.ResourceMemory, cfg.QueueSidecarMemoryRequest},
		{res.Limits, corev1.ResourceCPU, cfg.QueueSidecarCPULimit},
		{res.Limits, corev1.ResourceMemory, cfg.QueueSidecarMemoryLimit},
	} {
		if !q.qty.IsZero() {
			q.list[q.name] = q.qty
		}
	}
	if len(res.Limits) == 0 {
		res.Limits = nil
	}
	if len(res.Requests) == 0 {
		res.Requests = nil
	}
	return corev1.Container{
		Name:  contract.ContainerName,
		Image: cfg.QueueSidecarImage,
		Args:  slices.Clone(contract.Args),
		Ports: ports,
		Env:   env,
		// The queue-proxy is ready while the user container is and it is not draining; it
		// debounces the user container's failures itself, so one failure here counts. It
		// probes at the user's readiness period (the kubelet's 10 s by default): the node
		// probes a starting pod at once and often anyway, and a stopping pod leaves its
		// endpoints when it is deleted, so a short period would only cost idle pods CPU.
		ReadinessProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Port: intstr.FromInt32(contract.AdminPort), Path: contract.ReadinessPath,
			}},
			PeriodSeconds:    userReadinessPeriod(rev),
			TimeoutSeconds:   1,
			FailureThreshold: 1,
		},
		Resources: res,
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			RunAsNonRoot:             ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
	}
}
