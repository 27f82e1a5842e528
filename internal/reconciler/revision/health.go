package revision

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/gantry-run/gantry/internal/queue/contract"
)

// problem is what a Revision's pods say is wrong with it.
type problem struct {
	// resources is true for a problem of placement or image (ResourcesAvailable), false for
	// a container that fails (ContainerHealthy).
	resources bool
	reason    string
	message   string
	exitCode  int32
}

// imageReasons are the waiting reasons of a container whose image cannot be had.
var imageReasons = map[string]bool{"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true}

// podProblem returns the first problem the pods report, in a stable order: scheduling, then
// images, then crashing user containers. The queue-proxy's own state is not the user's.
func podProblem(pods []corev1.Pod) *problem {
	for _, p := range pods {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				return &problem{resources: true, reason: c.Reason, message: c.Message}
			}
		}
	}
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && imageReasons[w.Reason] && cs.Name != contract.ContainerName {
				return &problem{resources: true, reason: w.Reason, message: w.Message}
			}
		}
	}
	for _, p := range pods {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == contract.ContainerName {
				continue
			}
			t := cs.State.Terminated
			if t == nil {
				t = cs.LastTerminationState.Terminated
			}
			if t != nil && t.ExitCode != 0 {
				msg := t.Message
				if msg == "" {
					msg = t.Reason
				}
				if w := cs.State.Waiting; w != nil && w.Reason != "" {
					msg = fmt.Sprintf("%s; %s", msg, w.Reason)
				}
				return &problem{reason: t.Reason, message: msg, exitCode: t.ExitCode}
			}
		}
	}
	return nil
}
