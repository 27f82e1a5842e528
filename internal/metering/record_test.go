package metering

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

func serverlessPod(labels map[string]string, owners ...metav1.OwnerReference) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-7d9f-abcde", Namespace: "shop", UID: "uid-1", Labels: labels, OwnerReferences: owners,
			Annotations: map[string]string{v1alpha1.CapacityProvisionedAnnotation: "0.5vCPU 1GB"},
		},
		Status: corev1.PodStatus{StartTime: ptr.To(metav1.NewTime(t0)), Phase: corev1.PodRunning},
	}
}

func controller(kind, name string) metav1.OwnerReference {
	return metav1.OwnerReference{Kind: kind, Name: name, Controller: ptr.To(true)}
}

func TestFromPod(t *testing.T) {
	pod := serverlessPod(map[string]string{v1alpha1.ProfileLabel: "web", "pod-template-hash": "7d9f"}, controller("ReplicaSet", "web-7d9f"))
	got, ok, err := FromPod(pod)
	if err != nil || !ok {
		t.Fatalf("FromPod = %v, %v", ok, err)
	}
	want := Record{UID: "uid-1", Namespace: "shop", Pod: "web-7d9f-abcde", OwnerKind: "Deployment", OwnerName: "web", Profile: "web",
		Size: Size{MilliCPU: 500, MemoryMiB: 1024, StorageMiB: 20 << 10}, Start: t0}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}

	// Terminal: ends at its containers' last finish; more storage provisioned.
	pod.Annotations[v1alpha1.EphemeralStorageProvisionedAnnotation] = "30Gi"
	pod.Status.Phase = corev1.PodSucceeded
	pod.Status.InitContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(t0.Add(2 * time.Second))}}}}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{
		{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(t0.Add(42 * time.Second))}}},
		{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(t0.Add(40 * time.Second))}}},
	}
	got, _, _ = FromPod(pod)
	if !got.End.Equal(t0.Add(42*time.Second)) || got.Size.StorageMiB != 30<<10 {
		t.Errorf("terminal record = %+v, want end t0+42s and 30 GiB", got)
	}

	// Not metered: no annotation, or not started.
	plain := serverlessPod(nil)
	delete(plain.Annotations, v1alpha1.CapacityProvisionedAnnotation)
	if _, ok, err := FromPod(plain); ok || err != nil {
		t.Errorf("pod without the annotation: %v, %v", ok, err)
	}
	pending := serverlessPod(nil)
	pending.Status.StartTime = nil
	if _, ok, err := FromPod(pending); ok || err != nil {
		t.Errorf("pod not started: %v, %v", ok, err)
	}
	bad := serverlessPod(nil)
	bad.Annotations[v1alpha1.CapacityProvisionedAnnotation] = "big"
	if _, _, err := FromPod(bad); err == nil || !strings.Contains(err.Error(), v1alpha1.CapacityProvisionedAnnotation) {
		t.Errorf("bad annotation: %v, want it named", err)
	}
}

func TestOwner(t *testing.T) {
	for _, tc := range []struct {
		name           string
		pod            *corev1.Pod
		kind, own, rev string
	}{
		{"knative", serverlessPod(map[string]string{knativeServiceLabel: "hello", knativeRevisionLabel: "hello-00002"}, controller("ReplicaSet", "hello-00002-deployment-5c6")), "Service", "hello", "hello-00002"},
		{"deployment", serverlessPod(map[string]string{"pod-template-hash": "5c6"}, controller("ReplicaSet", "api-5c6")), "Deployment", "api", ""},
		{"bare replicaset", serverlessPod(nil, controller("ReplicaSet", "rs")), "ReplicaSet", "rs", ""},
		{"job", serverlessPod(nil, controller("Job", "backup")), "Job", "backup", ""},
		{"not a controller", serverlessPod(nil, metav1.OwnerReference{Kind: "Job", Name: "x"}), "Pod", "web-7d9f-abcde", ""},
		{"bare pod", serverlessPod(nil), "Pod", "web-7d9f-abcde", ""},
	} {
		kind, own, rev := Owner(tc.pod)
		if kind != tc.kind || own != tc.own || rev != tc.rev {
			t.Errorf("%s: Owner = %s %s %s, want %s %s %s", tc.name, kind, own, rev, tc.kind, tc.own, tc.rev)
		}
	}
}

func TestEndOfDeleted(t *testing.T) {
	now := t0.Add(time.Minute)
	pod := serverlessPod(nil)
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
	if got := EndOfDeleted(pod, now); !got.Equal(now) {
		t.Errorf("running pod deleted: end %v, want now", got)
	}
	pod.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{FinishedAt: metav1.NewTime(t0.Add(5 * time.Second))}}
	if got := EndOfDeleted(pod, now); !got.Equal(t0.Add(5 * time.Second)) {
		t.Errorf("ended pod deleted: end %v, want its containers' end", got)
	}
}
