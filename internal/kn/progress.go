package kn

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/gantry-run/gantry/pkg/apis"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// Step is one stage of a rollout, in the order they are reached.
type Step int

// The stages `gantry service create|update` and `gantry deploy` report.
const (
	StepRevisionCreated  Step = iota // the Configuration stamped the revision
	StepImageResolved                // the revision's image tag became a digest
	StepContainerStarted             // a pod pulled the image and started the container
	StepRevisionReady                // the revision is Ready: a pod passed its readiness probe
	StepRouteReady                   // the Service is Ready: its Route serves what it asks
	numSteps
)

// Rollout is what one look at a rollout found: the revision it is about, the steps reached
// with a line saying each, and whether it is over.
type Rollout struct {
	Revision string
	Reached  [numSteps]string // "" until the step is reached
	Done     bool
	Err      error // the reason the rollout failed, from the objects' conditions
}

// RolloutState is what a rollout is judged from: the Service as the create or update
// returned it (Generation) and as it is now, the revision its Configuration last created
// before the change (Previous, "" on create), the Configuration, that Configuration's
// latest created revision and the revision's pods. Configuration and Revision are nil
// until they exist.
type RolloutState struct {
	Service       *servingv1.Service
	Generation    int64
	Previous      string
	Configuration *servingv1.Configuration
	Revision      *servingv1.Revision
	Pods          []corev1.Pod
}

// Revision is the name of the revision the rollout is about, "" until the Service and its
// Configuration have caught up with the change.
func (s RolloutState) RevisionName() string {
	svc, cfg := s.Service, s.Configuration
	if svc == nil || svc.Status.ObservedGeneration < s.Generation || cfg == nil ||
		cfg.Status.ObservedGeneration < cfg.Generation {
		return ""
	}
	return cfg.Status.LatestCreatedRevisionName
}

// Observe tells a rollout's progress from its state. It only reads.
func Observe(s RolloutState) Rollout {
	r := Rollout{Revision: s.RevisionName()}
	rev, svc := s.Revision, s.Service
	if r.Revision == "" || rev == nil || rev.Name != r.Revision {
		return r
	}
	if rev.Name == s.Previous {
		r.Reached[StepRevisionCreated] = fmt.Sprintf("Revision %s unchanged.", rev.Name)
	} else {
		r.Reached[StepRevisionCreated] = fmt.Sprintf("Revision %s created.", rev.Name)
	}
	if d := imageDigest(rev); d != "" {
		r.Reached[StepImageResolved] = fmt.Sprintf("Image resolved to %s.", d)
	}
	if pod := startedPod(s.Pods); pod != "" {
		r.Reached[StepContainerStarted] = fmt.Sprintf("Image pulled, container started in pod %s.", pod)
	}
	if ready := rev.Status.GetCondition(servingv1.RevisionConditionReady); ready.IsFalse() {
		r.Err = fmt.Errorf("revision %s failed: %s", rev.Name, reasonText(ready))
		return r
	} else if ready.IsTrue() {
		r.Reached[StepRevisionReady] = "Revision ready."
	} else {
		return r
	}
	routes := svc.Status.GetCondition(servingv1.ServiceConditionRoutesReady)
	if routes.IsFalse() {
		r.Err = fmt.Errorf("route %s failed: %s", svc.Name, reasonText(routes))
		return r
	}
	if svc.Status.GetCondition(servingv1.ServiceConditionReady).IsTrue() && routeServes(svc, rev.Name) {
		r.Reached[StepRouteReady] = "Route ready."
		r.Done = true
	}
	return r
}

// startedPod is the first pod (by name) whose user container runs or ran, "" if none.
func startedPod(pods []corev1.Pod) string {
	name := ""
	for i := range pods {
		for _, cs := range pods[i].Status.ContainerStatuses {
			if cs.Name != UserContainer || (cs.State.Running == nil && cs.State.Terminated == nil && cs.LastTerminationState.Terminated == nil) {
				continue
			}
			if name == "" || pods[i].Name < name {
				name = pods[i].Name
			}
		}
	}
	return name
}

// UserContainer is the name Knative gives the container a Service runs.
const UserContainer = "user-container"

// routeServes reports whether the Service's route has caught up with rev: a route that
// follows the latest revision sends to it; one pinned elsewhere is ready as it is.
func routeServes(svc *servingv1.Service, rev string) bool {
	follows := len(svc.Spec.Traffic) == 0
	for _, t := range svc.Spec.Traffic {
		if isLatest(t) {
			follows = true
		}
	}
	return !follows || svc.Status.LatestReadyRevisionName == rev
}

// imageDigest is the short digest the revision's first container runs, or "".
func imageDigest(rev *servingv1.Revision) string {
	for _, cs := range rev.Status.ContainerStatuses {
		if cs.ImageDigest != "" {
			return ShortDigest(cs.ImageDigest)
		}
	}
	return ""
}

// ShortDigest shortens a digest or an image reference with a digest to its first 12 hex
// characters: "sha256:5ea96ba4b9c2".
func ShortDigest(ref string) string {
	d := ref
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		d = ref[i+1:]
	}
	algo, hex, ok := strings.Cut(d, ":")
	if !ok {
		return d
	}
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return algo + ":" + hex
}

// reasonText is "Reason: message" of a condition, on one line.
func reasonText(c *apis.Condition) string {
	msg := strings.Join(strings.Fields(c.GetMessage()), " ")
	switch {
	case c.GetReason() == "":
		return msg
	case msg == "":
		return c.GetReason()
	}
	return c.GetReason() + ": " + msg
}

// conditionIsTrue reports whether s's condition t is True.
func conditionIsTrue(s *apis.Status, t apis.ConditionType) bool {
	c := s.GetCondition(t)
	return c != nil && c.Status == corev1.ConditionTrue
}
