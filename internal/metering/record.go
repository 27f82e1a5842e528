package metering

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gantry-run/gantry/pkg/apis/serverless/v1alpha1"
)

// Record is one serverless pod's usage: what it was given and from when to when.
type Record struct {
	UID       string `json:"uid"`
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	// OwnerKind and OwnerName are what the pod runs for: the Knative Service ("Service"),
	// else its workload (Deployment, StatefulSet, DaemonSet, Job, CronJob, ReplicaSet, …),
	// else the pod itself ("Pod").
	OwnerKind string `json:"ownerKind"`
	OwnerName string `json:"ownerName"`
	// Revision is the Knative Revision, when there is one.
	Revision string `json:"revision,omitempty"`
	Profile  string `json:"profile"`
	Size     Size   `json:"size"`
	// Start is the start of the pod's image pull (its status.startTime); End is its end,
	// zero while it runs.
	Start time.Time `json:"start"`
	End   time.Time `json:"end,omitzero"`
}

// Open says whether the pod still runs.
func (r Record) Open() bool { return r.End.IsZero() }

// Knative's labels on a revision's pods.
const (
	knativeServiceLabel  = "serving.knative.dev/service"
	knativeRevisionLabel = "serving.knative.dev/revision"
	podTemplateHashLabel = "pod-template-hash"
)

// DefaultStorage is the ephemeral storage of a serverless pod whose annotation names none.
var DefaultStorage = resource.MustParse("20Gi")

// Serverless says whether pod is metered: it carries the capacity annotation.
func Serverless(pod *corev1.Pod) bool {
	_, ok := pod.Annotations[v1alpha1.CapacityProvisionedAnnotation]
	return ok
}

// FromPod is pod's record as far as the pod tells it, or ok false when the pod is not metered
// yet: it is not serverless or has not started (no status.startTime: its image pull has not
// begun). End is set once the pod is terminal: its containers' last end.
func FromPod(pod *corev1.Pod) (rec Record, ok bool, err error) {
	capS, serverless := pod.Annotations[v1alpha1.CapacityProvisionedAnnotation]
	if !serverless || pod.Status.StartTime == nil {
		return Record{}, false, nil
	}
	c, err := v1alpha1.ParseCapacity(capS)
	if err != nil {
		return Record{}, false, fmt.Errorf("pod %s/%s: annotation %s: %w", pod.Namespace, pod.Name, v1alpha1.CapacityProvisionedAnnotation, err)
	}
	storage := DefaultStorage
	if s, ok := pod.Annotations[v1alpha1.EphemeralStorageProvisionedAnnotation]; ok {
		if storage, err = resource.ParseQuantity(s); err != nil {
			return Record{}, false, fmt.Errorf("pod %s/%s: annotation %s: %q is not a quantity", pod.Namespace, pod.Name, v1alpha1.EphemeralStorageProvisionedAnnotation, s)
		}
	}
	rec = Record{
		UID:       string(pod.UID),
		Namespace: pod.Namespace,
		Pod:       pod.Name,
		Profile:   pod.Labels[v1alpha1.ProfileLabel],
		Size:      Size{MilliCPU: c.MilliCPU, MemoryMiB: c.MemoryMiB, StorageMiB: storage.Value() >> 20},
		Start:     pod.Status.StartTime.Time,
	}
	rec.OwnerKind, rec.OwnerName, rec.Revision = Owner(pod)
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		rec.End = EndOf(pod, time.Time{})
		if rec.End.IsZero() {
			rec.End = rec.Start
		}
	}
	return rec, true, nil
}

// Owner is what pod runs for: a Knative Service from its labels, else its controller's
// workload (a ReplicaSet is taken back to its Deployment by the pod-template-hash suffix of
// its name), else the pod itself.
func Owner(pod *corev1.Pod) (kind, name, revision string) {
	revision = pod.Labels[knativeRevisionLabel]
	if svc := pod.Labels[knativeServiceLabel]; svc != "" {
		return "Service", svc, revision
	}
	for _, ref := range pod.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		switch ref.Kind {
		case "ReplicaSet":
			if h := pod.Labels[podTemplateHashLabel]; h != "" {
				if d, ok := strings.CutSuffix(ref.Name, "-"+h); ok {
					return "Deployment", d, revision
				}
			}
		}
		return ref.Kind, ref.Name, revision
	}
	if revision != "" {
		return "Revision", revision, revision
	}
	return "Pod", pod.Name, revision
}

// EndOf is when pod's containers last ended: the latest finish of a terminated container
// (init containers included), or fallback when none finished.
func EndOf(pod *corev1.Pod, fallback time.Time) time.Time {
	var end time.Time
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for _, cs := range list {
			if t := cs.State.Terminated; t != nil && t.FinishedAt.After(end) {
				end = t.FinishedAt.Time
			}
		}
	}
	if end.IsZero() {
		return fallback
	}
	return end
}

// EndOfDeleted is when a deleted pod, seen gone at now, ended: its containers' last end when
// every container had ended, else now (the node deletes the pod once its sandbox is gone).
func EndOfDeleted(pod *corev1.Pod, now time.Time) time.Time {
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for _, cs := range list {
			if cs.State.Terminated == nil && (cs.State.Running != nil || cs.State.Waiting != nil) {
				return now
			}
		}
	}
	if end := EndOf(pod, now); !end.After(now) {
		return end
	}
	return now
}
