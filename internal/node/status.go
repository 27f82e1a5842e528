package node

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// buildStatus is the pod's status from what the worker knows, keeping the transition times
// of conditions that did not change.
func (w *worker) buildStatus() corev1.PodStatus {
	pod := w.pod
	now := metav1.NewTime(time.Now())
	st := corev1.PodStatus{
		Phase:      corev1.PodPending,
		HostIP:     pod.Status.HostIP,
		StartTime:  pod.Status.StartTime,
		QOSClass:   pod.Status.QOSClass,
		Conditions: nil,
	}
	if st.StartTime == nil {
		st.StartTime = &now
	}
	if ip := w.n.opts.Info.InternalIP; ip != nil {
		st.HostIP = ip.String()
		st.HostIPs = []corev1.HostIP{{IP: ip.String()}}
	}
	if w.sb != nil && w.sb.IP != nil {
		st.PodIP = w.sb.IP.String()
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	}
	initDone := true
	for _, c := range pod.Spec.InitContainers {
		cs := w.containerStatus(c)
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
			initDone = false
		}
	}
	running, succeeded, failed, ready := 0, 0, 0, 0
	for _, c := range pod.Spec.Containers {
		cs := w.containerStatus(c)
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil && w.state(c.Name).done && cs.State.Terminated.ExitCode == 0:
			succeeded++
		case cs.State.Terminated != nil && w.state(c.Name).done:
			failed++
		}
		if cs.Ready {
			ready++
		}
	}
	n := len(pod.Spec.Containers)
	switch {
	case w.failed != "":
		st.Phase, st.Reason, st.Message = corev1.PodFailed, w.failed, w.failedMsg
	case succeeded+failed == n && failed > 0:
		st.Phase = corev1.PodFailed
	case succeeded == n:
		st.Phase = corev1.PodSucceeded
	case running > 0 || succeeded+failed > 0:
		st.Phase = corev1.PodRunning
	}
	allReady := ready == n && st.Phase == corev1.PodRunning
	st.Conditions = []corev1.PodCondition{
		w.condition(corev1.PodReadyToStartContainers, w.sb != nil, now),
		w.condition(corev1.PodInitialized, initDone, now),
		w.condition(corev1.ContainersReady, allReady, now),
		w.condition(corev1.PodReady, allReady, now),
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			st.Conditions = append(st.Conditions, c)
		}
	}
	return st
}

// condition keeps the old transition time when the status did not change.
func (w *worker) condition(t corev1.PodConditionType, ok bool, now metav1.Time) corev1.PodCondition {
	status := corev1.ConditionFalse
	if ok {
		status = corev1.ConditionTrue
	}
	c := corev1.PodCondition{Type: t, Status: status, LastTransitionTime: now}
	for _, old := range w.pod.Status.Conditions {
		if old.Type == t && old.Status == status {
			c.LastTransitionTime = old.LastTransitionTime
		}
	}
	return c
}

func (w *worker) containerStatus(c corev1.Container) corev1.ContainerStatus {
	s := w.state(c.Name)
	cs := corev1.ContainerStatus{
		Name:                 c.Name,
		Image:                c.Image,
		RestartCount:         int32(s.status.RestartCount),
		Ready:                s.ready && s.status.Running,
		Started:              ptr.To(s.status.Running && s.startedOK),
		LastTerminationState: corev1.ContainerState{Terminated: s.lastTerm},
	}
	if s.img != nil {
		cs.ImageID = s.img.DigestRef
	}
	if s.started && w.sb != nil {
		cs.ContainerID = fmt.Sprintf("runc://%s-%s", w.sb.ID, c.Name)
	}
	switch {
	case s.waiting != nil:
		cs.State.Waiting = s.waiting
	case s.status.Running:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(s.status.StartedAt)}
	case s.started && !s.status.FinishedAt.IsZero():
		cs.State.Terminated = &corev1.ContainerStateTerminated{
			ExitCode: int32(s.status.ExitCode), Reason: s.status.Reason, ContainerID: cs.ContainerID,
			StartedAt: metav1.NewTime(s.status.StartedAt), FinishedAt: metav1.NewTime(s.status.FinishedAt),
		}
	default:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
	}
	return cs
}

// sources reads ConfigMaps and Secrets of the pod's namespace from the informer caches.
func (w *worker) sources() Sources { return listerSources{n: w.n, ns: w.pod.Namespace} }

type listerSources struct {
	n  *Node
	ns string
}

func (l listerSources) ConfigMap(name string) (map[string]string, error) {
	cm, err := l.n.cms.ConfigMaps(l.ns).Get(name)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range cm.Data {
		out[k] = v
	}
	for k, v := range cm.BinaryData {
		out[k] = string(v)
	}
	return out, nil
}

func (l listerSources) Secret(name string) (map[string][]byte, error) {
	s, err := l.n.secrets.Secrets(l.ns).Get(name)
	if err != nil {
		return nil, err
	}
	return s.Data, nil
}

// emptyLayer is an empty directory to serve as the root of containers that bring their
// program from the host (the queue-proxy).
func (n *Node) emptyLayer() string {
	dir := filepath.Join(n.opts.StateDir, "empty-layer")
	_ = os.MkdirAll(dir, 0o755)
	return dir
}

func quantity(b int64) string { return resource.NewQuantity(b, resource.BinarySI).String() }
