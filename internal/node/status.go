package node

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/sandbox"
)

// buildStatus is pod's status from what the worker knows (st), at now. It starts from the
// status the API server has and replaces what the node owns: phase, reason, message, the
// addresses, the start time, the container statuses and the node's conditions
// (PodReadyToStartContainers, Initialized, ContainersReady, Ready). Everything
// else stays as it is, times are cut to the second as the API server stores them, and a
// condition keeps its transition time while its status stays: so a pod whose state did not
// change builds exactly the status it already has, and nothing is written (as the kubelet's
// status manager compares before it writes).
func buildStatus(pod *corev1.Pod, st *podState, hostIP net.IP, now time.Time) corev1.PodStatus {
	now = now.Truncate(time.Second)
	old := pod.Status
	out := *old.DeepCopy()
	out.ObservedGeneration = pod.Generation
	if out.StartTime == nil {
		out.StartTime = ptr.To(metav1.NewTime(now))
	}
	if hostIP != nil {
		out.HostIP = hostIP.String()
		out.HostIPs = []corev1.HostIP{{IP: out.HostIP}}
	}
	if st.sb != nil && st.sb.IP != nil {
		out.PodIP = st.sb.IP.String()
		out.PodIPs = []corev1.PodIP{{IP: out.PodIP}}
	}

	out.InitContainerStatuses = nil
	var incomplete []string
	for _, c := range pod.Spec.InitContainers {
		cs := containerStatus(c, st.containers[c.Name], st.sb, old.InitContainerStatuses)
		out.InitContainerStatuses = append(out.InitContainerStatuses, cs)
		if t := cs.State.Terminated; t == nil || t.ExitCode != 0 {
			incomplete = append(incomplete, c.Name)
		}
	}
	out.ContainerStatuses = nil
	var unready []string
	for _, c := range pod.Spec.Containers {
		cs := containerStatus(c, st.containers[c.Name], st.sb, old.ContainerStatuses)
		out.ContainerStatuses = append(out.ContainerStatuses, cs)
		if !cs.Ready {
			unready = append(unready, c.Name)
		}
	}
	// As the kubelet: containers sorted by name, init containers in the spec's order.
	slices.SortFunc(out.ContainerStatuses, func(a, b corev1.ContainerStatus) int { return strings.Compare(a.Name, b.Name) })

	out.Reason, out.Message = "", ""
	if st.failed != "" {
		out.Phase, out.Reason, out.Message = corev1.PodFailed, st.failed, st.failedMsg
	} else {
		out.Phase = podPhase(pod.Spec.RestartPolicy, len(incomplete) == 0, out.ContainerStatuses)
	}

	set := func(t corev1.PodConditionType, ok bool, reason, msg string) {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, ObservedGeneration: pod.Generation,
			LastTransitionTime: metav1.NewTime(now)}
		if ok {
			c.Status = corev1.ConditionTrue
		} else {
			c.Reason, c.Message = reason, msg
		}
		for i, o := range out.Conditions {
			if o.Type != t {
				continue
			}
			if o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
			c.LastProbeTime = o.LastProbeTime
			out.Conditions[i] = c
			return
		}
		out.Conditions = append(out.Conditions, c)
	}
	terminal := out.Phase == corev1.PodSucceeded || out.Phase == corev1.PodFailed
	containersReady, readyReason, readyMsg := len(unready) == 0 && out.Phase == corev1.PodRunning, "ContainersNotReady",
		fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))
	if terminal {
		containersReady, readyReason, readyMsg = false, "PodCompleted", ""
	}
	set(corev1.PodReadyToStartContainers, st.sb != nil, "", "")
	set(corev1.PodInitialized, len(incomplete) == 0, "ContainersNotInitialized",
		fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(incomplete, " ")))
	set(corev1.ContainersReady, containersReady, readyReason, readyMsg)
	ready, gateMsg := containersReady, ""
	if containersReady {
		gateMsg = readinessGates(pod, out.Conditions)
		ready = gateMsg == ""
		readyReason, readyMsg = "ReadinessGatesNotReady", gateMsg
	}
	set(corev1.PodReady, ready, readyReason, readyMsg)
	normalize(&out)
	return out
}

// view is what buildStatus reads of the worker's state, in a form that compares with ==: a
// sync that leaves it as it was has nothing new to report.
type view struct {
	ip                string
	sandbox           bool
	failed, failedMsg string
	containers        []ctrView
}

type ctrView struct {
	started, ready, startedOK bool
	waiting                   corev1.ContainerStateWaiting
	hasWaiting                bool
	status                    sandbox.ContainerStatus
	lastTerm                  corev1.ContainerStateTerminated
	hasLastTerm               bool
	imageID                   string
}

func (st *podState) view(pod *corev1.Pod) view {
	v := view{sandbox: st.sb != nil, failed: st.failed, failedMsg: st.failedMsg}
	if st.sb != nil && st.sb.IP != nil {
		v.ip = st.sb.IP.String()
	}
	for _, c := range allContainers(pod) {
		s := st.containers[c.Name]
		if s == nil {
			v.containers = append(v.containers, ctrView{})
			continue
		}
		cv := ctrView{started: s.started, ready: s.ready, startedOK: s.startedOK, status: s.status,
			hasWaiting: s.waiting != nil, hasLastTerm: s.lastTerm != nil}
		if s.waiting != nil {
			cv.waiting = *s.waiting
		}
		if s.lastTerm != nil {
			cv.lastTerm = *s.lastTerm
		}
		if s.img != nil {
			cv.imageID = s.img.DigestRef
		}
		v.containers = append(v.containers, cv)
	}
	return v
}

func (v view) equal(o view) bool {
	return v.ip == o.ip && v.sandbox == o.sandbox && v.failed == o.failed && v.failedMsg == o.failedMsg &&
		slices.Equal(v.containers, o.containers)
}

// readinessGates says which of the pod's readiness gates is not True; "" when all are.
func readinessGates(pod *corev1.Pod, conds []corev1.PodCondition) string {
	for _, g := range pod.Spec.ReadinessGates {
		i := slices.IndexFunc(conds, func(c corev1.PodCondition) bool { return c.Type == g.ConditionType })
		switch {
		case i < 0:
			return fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", g.ConditionType)
		case conds[i].Status != corev1.ConditionTrue:
			return fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", g.ConditionType, conds[i].Status)
		}
	}
	return ""
}

// podPhase is the phase of a pod whose containers have statuses, as the kubelet decides it:
// Pending until its init containers completed and while a container waits to start; Running
// while one runs, or while all have stopped and one will restart; Succeeded when all
// succeeded and none restarts; Failed when all stopped, one failed and none restarts.
func podPhase(policy corev1.RestartPolicy, initDone bool, statuses []corev1.ContainerStatus) corev1.PodPhase {
	if !initDone {
		return corev1.PodPending
	}
	var waiting, running, stopped, succeeded int
	for _, cs := range statuses {
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil:
			// Waiting to restart after an exit.
			stopped++
			if cs.LastTerminationState.Terminated.ExitCode == 0 {
				succeeded++
			}
		default:
			waiting++
		}
	}
	switch {
	case waiting > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case stopped > 0:
		switch {
		case policy == corev1.RestartPolicyAlways:
			return corev1.PodRunning
		case stopped == succeeded:
			return corev1.PodSucceeded
		case policy == corev1.RestartPolicyNever:
			return corev1.PodFailed
		default:
			return corev1.PodRunning // OnFailure: the failed ones restart
		}
	}
	return corev1.PodPending
}

// containerStatus is the status of container c from what the worker knows of it (s, nil
// before the worker has looked at it). The image ID of a container whose image the node has
// not pulled in this run (one re-adopted after a restart) is kept from the old status.
func containerStatus(c corev1.Container, s *ctr, sb *sandbox.Sandbox, old []corev1.ContainerStatus) corev1.ContainerStatus {
	if s == nil {
		s = &ctr{}
	}
	cs := corev1.ContainerStatus{
		Name:                 c.Name,
		Image:                c.Image,
		RestartCount:         int32(s.status.RestartCount),
		Ready:                s.ready && s.status.Running,
		Started:              ptr.To(s.status.Running && s.startedOK),
		LastTerminationState: corev1.ContainerState{Terminated: s.lastTerm.DeepCopy()},
	}
	switch {
	case s.img != nil:
		cs.ImageID = s.img.DigestRef
	default:
		for _, o := range old {
			if o.Name == c.Name && o.Image == c.Image {
				cs.ImageID = o.ImageID
			}
		}
	}
	if s.started && sb != nil {
		cs.ContainerID = fmt.Sprintf("runc://%s-%s", sb.ID, c.Name)
	}
	switch {
	case s.waiting != nil:
		cs.State.Waiting = s.waiting.DeepCopy()
	case s.status.Running:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(s.status.StartedAt)}
	case s.started && !s.status.FinishedAt.IsZero():
		cs.State.Terminated = terminated(s.status, cs.ContainerID)
	default:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
	}
	return cs
}

// terminated is how a container's run ended, as the API says it.
func terminated(st sandbox.ContainerStatus, id string) *corev1.ContainerStateTerminated {
	return &corev1.ContainerStateTerminated{
		ExitCode: int32(st.ExitCode), Reason: st.Reason, ContainerID: id,
		StartedAt: metav1.NewTime(st.StartedAt), FinishedAt: metav1.NewTime(st.FinishedAt),
	}
}

// normalize cuts every time of s to the second, in UTC, as the API server stores times, so a
// status built again compares equal to the one read back (the kubelet's normalizeStatus).
func normalize(s *corev1.PodStatus) {
	t := func(t *metav1.Time) { *t = t.Rfc3339Copy() }
	if s.StartTime != nil {
		t(s.StartTime)
	}
	for i := range s.Conditions {
		t(&s.Conditions[i].LastProbeTime)
		t(&s.Conditions[i].LastTransitionTime)
	}
	state := func(c *corev1.ContainerState) {
		if c.Running != nil {
			t(&c.Running.StartedAt)
		}
		if c.Terminated != nil {
			t(&c.Terminated.StartedAt)
			t(&c.Terminated.FinishedAt)
		}
	}
	for _, list := range [][]corev1.ContainerStatus{s.InitContainerStatuses, s.ContainerStatuses} {
		for i := range list {
			state(&list[i].State)
			state(&list[i].LastTerminationState)
		}
	}
}

// sources reads ConfigMaps and Secrets of the pod's namespace, by name (objects.go).
func (w *worker) sources() Sources {
	cms, secrets := w.n.cms, w.n.secrets
	if onServerlessNode(w.pod) {
		cms, secrets = w.n.serverlessCMs, w.n.serverlessSecrets
	}
	return listerSources{cms: cms, secrets: secrets, services: w.n.services, ns: w.pod.Namespace}
}

type listerSources struct {
	cms      *objectCache[*corev1.ConfigMap]
	secrets  *objectCache[*corev1.Secret]
	services *objectCache[*corev1.Service]
	ns       string
}

// APIServer is the ClusterIP and HTTPS port of Service default/kubernetes; ok is false
// without one.
func (l listerSources) APIServer() (ip string, port int32, ok bool) {
	if l.services == nil {
		return "", 0, false
	}
	svc, err := l.services.read(metav1.NamespaceDefault, "kubernetes")
	if err != nil || svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone || len(svc.Spec.Ports) == 0 {
		return "", 0, false
	}
	return svc.Spec.ClusterIP, svc.Spec.Ports[0].Port, true
}

func (l listerSources) ConfigMap(name string) (map[string]string, error) {
	cm, err := l.cms.read(l.ns, name)
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
	s, err := l.secrets.read(l.ns, name)
	if err != nil {
		return nil, err
	}
	return s.Data, nil
}

func quantity(b int64) string { return resource.NewQuantity(b, resource.BinarySI).String() }
