package v1

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gantry-run/gantry/pkg/apis"
	"github.com/gantry-run/gantry/pkg/apis/config"
)

// validService returns a defaulted, valid Service whose template mutate
// changes.
func validService(mutate func(*Service)) *Service {
	s := &Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: "default"},
		Spec: ServiceSpec{ConfigurationSpec: ConfigurationSpec{Template: RevisionTemplateSpec{
			Spec: RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: "ghcr.io/x/hello"}}}},
		}}},
	}
	s.SetDefaults(context.Background())
	if mutate != nil {
		mutate(s)
	}
	return s
}

func container(s *Service, i int) *corev1.Container { return &s.Spec.Template.Spec.Containers[i] }

func TestRevisionSpecValidation(t *testing.T) {
	nodeSelector := config.ToContext(context.Background(), &config.Config{Features: &config.Features{PodSpecNodeSelector: true}})
	tests := []struct {
		name   string
		ctx    context.Context
		mutate func(*Service)
		want   string
	}{{
		name: "valid",
	}, {
		name:   "container concurrency too high",
		mutate: func(s *Service) { s.Spec.Template.Spec.ContainerConcurrency = ptr[int64](1001) },
		want:   "expected 0 <= 1001 <= 1000: spec.template.spec.containerConcurrency",
	}, {
		name:   "container concurrency negative",
		mutate: func(s *Service) { s.Spec.Template.Spec.ContainerConcurrency = ptr[int64](-1) },
		want:   "expected 0 <= -1 <= 1000: spec.template.spec.containerConcurrency",
	}, {
		name:   "timeout too high",
		mutate: func(s *Service) { s.Spec.Template.Spec.TimeoutSeconds = ptr[int64](601) },
		want:   "expected 0 <= 601 <= 600: spec.template.spec.timeoutSeconds",
	}, {
		name: "timeout within a configured max",
		ctx: config.ToContext(context.Background(), &config.Config{Defaults: func() *config.Defaults {
			d := config.NewDefaults()
			d.MaxRevisionTimeoutSeconds = 3600
			return d
		}()}),
		mutate: func(s *Service) { s.Spec.Template.Spec.TimeoutSeconds = ptr[int64](1800) },
	}, {
		name: "response start timeout above timeout",
		mutate: func(s *Service) {
			s.Spec.Template.Spec.TimeoutSeconds = ptr[int64](10)
			s.Spec.Template.Spec.ResponseStartTimeoutSeconds = ptr[int64](11)
			s.Spec.Template.Spec.IdleTimeoutSeconds = ptr[int64](-1)
		},
		want: "expected 0 <= -1 <= 10: spec.template.spec.idleTimeoutSeconds\n" +
			"expected 0 <= 11 <= 10: spec.template.spec.responseStartTimeoutSeconds",
	}, {
		name: "initial-scale 0 refused by default",
		mutate: func(s *Service) {
			s.Spec.Template.Annotations = map[string]string{"autoscaling.knative.dev/initial-scale": "0"}
		},
		want: "expected 1 <= 0 <= 2147483647: spec.template.metadata.annotations.autoscaling.knative.dev/initial-scale",
	}, {
		name: "initial-scale 0 with allow-zero-initial-scale",
		ctx: config.ToContext(context.Background(), &config.Config{Autoscaler: func() *config.Autoscaler {
			a := config.NewAutoscaler()
			a.AllowZeroInitialScale = true
			return a
		}()}),
		mutate: func(s *Service) {
			s.Spec.Template.Annotations = map[string]string{"autoscaling.knative.dev/initial-scale": "0"}
		},
	}, {
		name: "the HPA class with metric cpu",
		mutate: func(s *Service) {
			s.Spec.Template.Annotations = map[string]string{"autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev", "autoscaling.knative.dev/metric": "cpu"}
		},
	}, {
		name: "the HPA class with a window",
		mutate: func(s *Service) {
			s.Spec.Template.Annotations = map[string]string{"autoscaling.knative.dev/class": "hpa.autoscaling.knative.dev", "autoscaling.knative.dev/window": "6s"}
		},
		want: "only applies to class kpa.autoscaling.knative.dev: spec.template.metadata.annotations.autoscaling.knative.dev/window",
	}, {
		name:   "no containers",
		mutate: func(s *Service) { s.Spec.Template.Spec.Containers = nil },
		want:   "missing field(s): spec.template.spec.containers",
	}, {
		name:   "missing image",
		mutate: func(s *Service) { container(s, 0).Image = "" },
		want:   "missing field(s): spec.template.spec.containers[0].image",
	}, {
		name: "reserved env vars",
		mutate: func(s *Service) {
			container(s, 0).Env = []corev1.EnvVar{{Name: "OK", Value: "1"}, {Name: "PORT", Value: "1"}, {Name: "K_SERVICE"}}
		},
		want: "invalid value: K_SERVICE: spec.template.spec.containers[0].env[2].name\nthe name is reserved\n" +
			"invalid value: PORT: spec.template.spec.containers[0].env[1].name\nthe name is reserved",
	}, {
		name:   "env name missing",
		mutate: func(s *Service) { container(s, 0).Env = []corev1.EnvVar{{Value: "x"}} },
		want:   "missing field(s): spec.template.spec.containers[0].env[0].name",
	}, {
		name: "env value and valueFrom",
		mutate: func(s *Service) {
			container(s, 0).Env = []corev1.EnvVar{{Name: "A", Value: "x", ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{Key: "k"}}}}
		},
		want: "expected exactly one, got both: spec.template.spec.containers[0].env[0].value, spec.template.spec.containers[0].env[0].valueFrom",
	}, {
		name:   "envFrom without a source",
		mutate: func(s *Service) { container(s, 0).EnvFrom = []corev1.EnvFromSource{{Prefix: "X"}} },
		want:   "expected exactly one, got neither: spec.template.spec.containers[0].envFrom[0].configMapRef, spec.template.spec.containers[0].envFrom[0].secretRef",
	}, {
		name: "reserved port",
		mutate: func(s *Service) {
			container(s, 0).Ports = []corev1.ContainerPort{{ContainerPort: 8012}}
			container(s, 0).ReadinessProbe = nil
		},
		want: "invalid value: 8012: spec.template.spec.containers[0].ports[0].containerPort\nthe port is reserved",
	}, {
		name: "port name, protocol, host port",
		mutate: func(s *Service) {
			container(s, 0).Ports = []corev1.ContainerPort{{ContainerPort: 8080, Name: "grpc", Protocol: corev1.ProtocolUDP, HostPort: 80}}
		},
		want: "invalid value: UDP: spec.template.spec.containers[0].ports[0].protocol\nmust be TCP\n" +
			"invalid value: grpc: spec.template.spec.containers[0].ports[0].name\nmust be \"h2c\", \"http1\" or empty\n" +
			"must not set the field(s): spec.template.spec.containers[0].ports[0].hostPort",
	}, {
		name: "two ports",
		mutate: func(s *Service) {
			container(s, 0).Ports = []corev1.ContainerPort{{ContainerPort: 8080}, {ContainerPort: 8081}}
		},
		want: "more than one container port is set: spec.template.spec.containers[0].ports",
	}, {
		name: "several containers, none with a port",
		mutate: func(s *Service) {
			container(s, 0).Ports = nil
			s.Spec.Template.Spec.Containers = append(s.Spec.Template.Spec.Containers, corev1.Container{Name: "side", Image: "s"})
		},
		want: "exactly one container must declare a port when there are several containers: spec.template.spec.containers",
	}, {
		name: "several containers, two with ports",
		mutate: func(s *Service) {
			s.Spec.Template.Spec.Containers = append(s.Spec.Template.Spec.Containers,
				corev1.Container{Name: "side", Image: "s", Ports: []corev1.ContainerPort{{ContainerPort: 9000}}})
		},
		want: "only one container may declare a port: spec.template.spec.containers[0].ports, spec.template.spec.containers[1].ports",
	}, {
		name: "sidecar may use PORT",
		mutate: func(s *Service) {
			s.Spec.Template.Spec.Containers = append(s.Spec.Template.Spec.Containers,
				corev1.Container{Name: "side", Image: "s", Env: []corev1.EnvVar{{Name: "PORT", Value: "1"}}})
		},
	}, {
		name:   "reserved container name",
		mutate: func(s *Service) { container(s, 0).Name = "queue-proxy" },
		want:   "invalid value: queue-proxy: spec.template.spec.containers[0].name\nthe name is reserved",
	}, {
		name: "duplicate container names",
		mutate: func(s *Service) {
			s.Spec.Template.Spec.Containers = append(s.Spec.Template.Spec.Containers,
				corev1.Container{Name: "user-container", Image: "s"})
		},
		want: "duplicate container name \"user-container\": spec.template.spec.containers[0].name, spec.template.spec.containers[1].name",
	}, {
		name: "disallowed pod fields",
		mutate: func(s *Service) {
			p := &s.Spec.Template.Spec.PodSpec
			p.NodeSelector = map[string]string{"a": "b"}
			p.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{}}
			p.Tolerations = []corev1.Toleration{{Key: "k"}}
			p.HostNetwork, p.HostPID, p.HostIPC = true, true, true
			p.NodeName = "n"
		},
		want: "must not set the field(s): spec.template.spec.affinity, spec.template.spec.hostIPC, spec.template.spec.hostNetwork, " +
			"spec.template.spec.hostPID, spec.template.spec.nodeName, spec.template.spec.nodeSelector, " +
			"spec.template.spec.tolerations",
	}, {
		name:   "nodeSelector allowed by a feature flag",
		ctx:    nodeSelector,
		mutate: func(s *Service) { s.Spec.Template.Spec.NodeSelector = map[string]string{"a": "b"} },
	}, {
		name: "disallowed container fields",
		mutate: func(s *Service) {
			c := container(s, 0)
			c.Stdin, c.TTY = true, true
			c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{}}}
		},
		want: "must not set the field(s): spec.template.spec.containers[0].lifecycle, spec.template.spec.containers[0].stdin, " +
			"spec.template.spec.containers[0].tty",
	}, {
		name: "privileged",
		mutate: func(s *Service) {
			container(s, 0).SecurityContext = &corev1.SecurityContext{Privileged: ptr(true), RunAsNonRoot: ptr(true),
				Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE", "SYS_ADMIN"}}}
		},
		want: "invalid value: SYS_ADMIN: spec.template.spec.containers[0].securityContext.capabilities.add[1]\nonly NET_BIND_SERVICE may be added\n" +
			"must not set the field(s): spec.template.spec.containers[0].securityContext.privileged",
	}, {
		name:   "privileged false is harmless",
		mutate: func(s *Service) { container(s, 0).SecurityContext = &corev1.SecurityContext{Privileged: ptr(false)} },
	}, {
		name: "reserved and relative mount paths, unknown volume",
		mutate: func(s *Service) {
			s.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			container(s, 0).VolumeMounts = []corev1.VolumeMount{
				{Name: "v", MountPath: "/dev/log"}, {Name: "v", MountPath: "rel"}, {Name: "nope", MountPath: "/x"},
			}
		},
		want: "invalid value: /dev/log: spec.template.spec.containers[0].volumeMounts[0].mountPath\nthe path is reserved\n" +
			"invalid value: nope: spec.template.spec.containers[0].volumeMounts[2].name\nno volume of that name\n" +
			"invalid value: rel: spec.template.spec.containers[0].volumeMounts[1].mountPath\nmust be an absolute path",
	}, {
		name: "volume problems",
		mutate: func(s *Service) {
			s.Spec.Template.Spec.Volumes = []corev1.Volume{
				{Name: "unused", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}},
				{Name: "none"},
			}
			container(s, 0).VolumeMounts = []corev1.VolumeMount{{Name: "host", MountPath: "/h"}, {Name: "none", MountPath: "/n"}}
		},
		want: "expected exactly one, got neither: spec.template.spec.volumes[2].configMap, spec.template.spec.volumes[2].emptyDir, " +
			"spec.template.spec.volumes[2].projected, spec.template.spec.volumes[2].secret\n" +
			"invalid value: unused: spec.template.spec.volumes[0].name\nvolume is not mounted by any container\n" +
			"must not set the field(s): spec.template.spec.volumes[1].hostPath",
	}, {
		name:   "persistentVolumeClaim while kubernetes.podspec-persistent-volume-claim is disabled",
		mutate: func(s *Service) { claimVolume(s, false) },
		want:   "must not set the field(s): spec.template.spec.volumes[0].persistentVolumeClaim",
	}, {
		name:   "writable persistentVolumeClaim while kubernetes.podspec-persistent-volume-write is disabled",
		ctx:    config.ToContext(context.Background(), &config.Config{Features: &config.Features{PodSpecPersistentVolumeClaim: true}}),
		mutate: func(s *Service) { claimVolume(s, false) },
		want: "invalid value: false: spec.template.spec.volumes[0].persistentVolumeClaim.readOnly\n" +
			"must be true while config-features kubernetes.podspec-persistent-volume-write is disabled",
	}, {
		name:   "read-only persistentVolumeClaim with kubernetes.podspec-persistent-volume-claim",
		ctx:    config.ToContext(context.Background(), &config.Config{Features: &config.Features{PodSpecPersistentVolumeClaim: true}}),
		mutate: func(s *Service) { claimVolume(s, true) },
	}, {
		name: "writable persistentVolumeClaim with both flags",
		ctx: config.ToContext(context.Background(), &config.Config{Features: &config.Features{
			PodSpecPersistentVolumeClaim: true, PodSpecPersistentVolumeWrite: true}}),
		mutate: func(s *Service) { claimVolume(s, false) },
	}, {
		name: "probe on another port",
		mutate: func(s *Service) {
			container(s, 0).ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
				HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(9999)}}}
		},
		want: "invalid value: 9999: spec.template.spec.containers[0].readinessProbe.httpGet.port\nmay only probe the container port 8080",
	}, {
		name: "probe with two handlers and a negative period",
		mutate: func(s *Service) {
			container(s, 0).LivenessProbe = &corev1.Probe{PeriodSeconds: -1, ProbeHandler: corev1.ProbeHandler{
				HTTPGet: &corev1.HTTPGetAction{}, Exec: &corev1.ExecAction{}}}
		},
		want: "expected exactly one, got both: spec.template.spec.containers[0].livenessProbe.exec, spec.template.spec.containers[0].livenessProbe.httpGet\n" +
			"invalid value: -1: spec.template.spec.containers[0].livenessProbe.periodSeconds\nmust not be negative",
	}, {
		name:   "init containers need a flag",
		mutate: func(s *Service) { s.Spec.Template.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "i"}} },
		want:   "must not set the field(s): spec.template.spec.initContainers",
	}, {
		name: "autoscaling annotations on the template",
		mutate: func(s *Service) {
			s.Spec.Template.Annotations = map[string]string{"autoscaling.knative.dev/min-scale": "3", "autoscaling.knative.dev/max-scale": "2"}
		},
		want: "invalid value: max-scale=2 is less than min-scale=3: spec.template.metadata.annotations.autoscaling.knative.dev/max-scale",
	}, {
		name:   "template name without the parent prefix",
		mutate: func(s *Service) { s.Spec.Template.Name = "other-v1" },
		want:   "invalid value: other-v1: spec.template.metadata.name\nthe revision name must start with \"hello-\"",
	}, {
		name:   "template name with the parent prefix",
		mutate: func(s *Service) { s.Spec.Template.Name = "hello-v1" },
	}, {
		name:   "template generateName",
		mutate: func(s *Service) { s.Spec.Template.GenerateName = "hello-" },
		want:   "must not set the field(s): spec.template.metadata.generateName",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			got := validService(tc.mutate).Validate(ctx).Error()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Validate (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRevisionValidation(t *testing.T) {
	valid := func() *Revision {
		r := &Revision{
			ObjectMeta: metav1.ObjectMeta{Name: "hello-00001", Annotations: map[string]string{"autoscaling.knative.dev/window": "60s"}},
			Spec:       RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: "i"}}}},
		}
		r.SetDefaults(context.Background())
		return r
	}
	tests := []struct {
		name   string
		ctx    func(base *Revision) context.Context
		mutate func(*Revision)
		want   string
	}{{
		name: "valid",
	}, {
		name:   "bad name",
		mutate: func(r *Revision) { r.Name = "Hello_1" },
		want:   "invalid value: Hello_1: metadata.name\n",
	}, {
		name:   "bad annotation",
		mutate: func(r *Revision) { r.Annotations["autoscaling.knative.dev/window"] = "1s" },
		want:   "expected 6s <= 1s <= 1h0m0s: metadata.annotations.autoscaling.knative.dev/window",
	}, {
		name:   "spec changed on update",
		ctx:    func(base *Revision) context.Context { return apis.WithinUpdate(context.Background(), base) },
		mutate: func(r *Revision) { r.Spec.Containers[0].Image = "other" },
		want:   "immutable field(s) changed: a revision's spec never changes after creation: spec",
	}, {
		name:   "metadata changed on update",
		ctx:    func(base *Revision) context.Context { return apis.WithinUpdate(context.Background(), base) },
		mutate: func(r *Revision) { r.Labels = map[string]string{"a": "b"} },
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx(valid())
			}
			r := valid()
			if tc.mutate != nil {
				tc.mutate(r)
			}
			got := r.Validate(ctx).Error()
			if !strings.HasPrefix(got, tc.want) || (tc.want == "") != (got == "") {
				t.Errorf("Validate = %q, want prefix %q", got, tc.want)
			}
		})
	}
}

// claimVolume mounts the claim "data" at /data in the first container.
func claimVolume(s *Service, readOnly bool) {
	s.Spec.Template.Spec.Volumes = append(s.Spec.Template.Spec.Volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data", ReadOnly: readOnly}}})
	container(s, 0).VolumeMounts = append(container(s, 0).VolumeMounts, corev1.VolumeMount{Name: "data", MountPath: "/data"})
}
