package v1

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/gantry-run/gantry/pkg/apis/config"
)

func tcpProbe(port int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(port)}},
		SuccessThreshold: 1,
	}
}

func TestRevisionSpecDefaults(t *testing.T) {
	f := false
	tests := []struct {
		name string
		ctx  context.Context
		in   RevisionSpec
		want RevisionSpec
	}{{
		name: "empty container",
		in:   RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: "img"}}}},
		want: RevisionSpec{
			PodSpec: corev1.PodSpec{
				EnableServiceLinks: &f,
				Containers: []corev1.Container{{
					Name: "user-container", Image: "img",
					Ports:          []corev1.ContainerPort{{ContainerPort: 8080}},
					ReadinessProbe: tcpProbe(8080),
				}},
			},
			TimeoutSeconds:       ptr[int64](300),
			ContainerConcurrency: ptr[int64](0),
		},
	}, {
		name: "kept values and probe on the declared port",
		in: RevisionSpec{
			PodSpec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "app", Image: "img", Ports: []corev1.ContainerPort{{ContainerPort: 9000}},
				ReadinessProbe: &corev1.Probe{PeriodSeconds: 2},
			}}},
			TimeoutSeconds: ptr[int64](10), ContainerConcurrency: ptr[int64](4),
		},
		want: RevisionSpec{
			PodSpec: corev1.PodSpec{
				EnableServiceLinks: &f,
				Containers: []corev1.Container{{
					Name: "app", Image: "img", Ports: []corev1.ContainerPort{{ContainerPort: 9000}},
					ReadinessProbe: &corev1.Probe{
						ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(9000)}},
						PeriodSeconds: 2, SuccessThreshold: 1,
					},
				}},
			},
			TimeoutSeconds: ptr[int64](10), ContainerConcurrency: ptr[int64](4),
		},
	}, {
		name: "http probe kept",
		in: RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{
			Image: "img", ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/h"}}},
		}}}},
		want: RevisionSpec{
			PodSpec: corev1.PodSpec{EnableServiceLinks: &f, Containers: []corev1.Container{{
				Name: "user-container", Image: "img", Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/h"}}, SuccessThreshold: 1},
			}}},
			TimeoutSeconds: ptr[int64](300), ContainerConcurrency: ptr[int64](0),
		},
	}, {
		name: "several containers: names by index, port and probe only on the serving one",
		in: RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{
			{Image: "sidecar"},
			{Image: "app", Ports: []corev1.ContainerPort{{ContainerPort: 8888}}},
		}}},
		want: RevisionSpec{
			PodSpec: corev1.PodSpec{EnableServiceLinks: &f, Containers: []corev1.Container{
				{Name: "user-container-0", Image: "sidecar"},
				{Name: "user-container-1", Image: "app", Ports: []corev1.ContainerPort{{ContainerPort: 8888}}, ReadinessProbe: tcpProbe(8888)},
			}},
			TimeoutSeconds: ptr[int64](300), ContainerConcurrency: ptr[int64](0),
		},
	}, {
		name: "configured defaults and read-only config mounts",
		ctx: config.ToContext(context.Background(), &config.Config{Defaults: &config.Defaults{
			RevisionTimeoutSeconds: 100, RevisionResponseStartTimeoutSeconds: 20, RevisionIdleTimeoutSeconds: 30,
			ContainerConcurrency: 5, UserContainerName: "app", InitContainerName: "setup",
		}}),
		in: RevisionSpec{PodSpec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Image: "init"}},
			Containers: []corev1.Container{{Image: "img", VolumeMounts: []corev1.VolumeMount{
				{Name: "cm", MountPath: "/cm"}, {Name: "tmp", MountPath: "/scratch"},
			}}},
			Volumes: []corev1.Volume{
				{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
		}},
		want: RevisionSpec{
			PodSpec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "setup", Image: "init"}},
				Containers: []corev1.Container{{
					Name: "app", Image: "img", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}, ReadinessProbe: tcpProbe(8080),
					VolumeMounts: []corev1.VolumeMount{{Name: "cm", MountPath: "/cm", ReadOnly: true}, {Name: "tmp", MountPath: "/scratch"}},
				}},
				Volumes: []corev1.Volume{
					{Name: "cm", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}},
					{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				},
			},
			TimeoutSeconds: ptr[int64](100), ResponseStartTimeoutSeconds: ptr[int64](20),
			IdleTimeoutSeconds: ptr[int64](30), ContainerConcurrency: ptr[int64](5),
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			got := tc.in.DeepCopy()
			got.SetDefaults(ctx)
			if diff := cmp.Diff(&tc.want, got); diff != "" {
				t.Errorf("SetDefaults (-want +got):\n%s", diff)
			}
			again := got.DeepCopy()
			again.SetDefaults(ctx)
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("SetDefaults is not idempotent (-first +second):\n%s", diff)
			}
		})
	}
}

func TestRevisionDefaults(t *testing.T) {
	r := &Revision{Spec: RevisionSpec{PodSpec: corev1.PodSpec{Containers: []corev1.Container{{Image: "i"}}}}}
	r.SetDefaults(context.Background())
	if r.Spec.Containers[0].Name != "user-container" || *r.Spec.TimeoutSeconds != 300 {
		t.Errorf("Revision.SetDefaults did not default its spec: %+v", r.Spec)
	}
}
