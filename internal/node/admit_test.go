package node

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestUnsupported(t *testing.T) {
	ok := corev1.Container{Name: "app", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}
	tests := []struct {
		name string
		spec corev1.PodSpec
		want []string
	}{
		{"plain pod", corev1.PodSpec{Containers: []corev1.Container{ok}}, nil},
		{"host namespaces", corev1.PodSpec{HostNetwork: true, HostPID: true, HostIPC: true, Containers: []corev1.Container{ok}},
			[]string{"spec.hostNetwork", "spec.hostPID", "spec.hostIPC"}},
		{"privileged and host port", corev1.PodSpec{Containers: []corev1.Container{ok, {
			Name:            "bad",
			SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)},
			Ports:           []corev1.ContainerPort{{ContainerPort: 80, HostPort: 80}},
		}}}, []string{"spec.containers[1].securityContext.privileged", "spec.containers[1].ports[0].hostPort"}},
		{"privileged init container", corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init", SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}},
			Containers:     []corev1.Container{ok},
		}, []string{"spec.initContainers[0].securityContext.privileged"}},
		{"hostPath volume", corev1.PodSpec{Containers: []corev1.Container{ok},
			Volumes: []corev1.Volume{{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}},
			[]string{"spec.volumes[0].hostPath"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, Unsupported(&corev1.Pod{Spec: tt.spec})); diff != "" {
				t.Errorf("Unsupported (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRefusalNamesTheFields(t *testing.T) {
	got := refusal([]string{"spec.hostNetwork", "spec.containers[0].securityContext.privileged"})
	want := "Pod not supported on a serverless node: fields not supported: spec.hostNetwork, spec.containers[0].securityContext.privileged"
	if got != want {
		t.Errorf("refusal = %q, want %q", got, want)
	}
}
