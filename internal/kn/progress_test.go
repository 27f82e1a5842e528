package kn

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/gantry-run/gantry/pkg/apis"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

func TestObserve(t *testing.T) {
	svcAt := func(observed int64, ready corev1.ConditionStatus, latestReady string) *servingv1.Service {
		s := fixtureReady()
		s.Name, s.Generation = "hello", 2
		s.Status.ObservedGeneration = observed
		s.Status.LatestReadyRevisionName = latestReady
		s.Status.Conditions[0].Status = ready
		return s
	}
	cfg := &servingv1.Configuration{}
	cfg.Generation, cfg.Status.ObservedGeneration = 2, 2
	cfg.Status.LatestCreatedRevisionName = "hello-00002"
	staleCfg := cfg.DeepCopy()
	staleCfg.Status.ObservedGeneration = 1
	rev := fixtureRevision("hello-00002", "2", time.Second, corev1.ConditionUnknown, "Deploying")
	rev.Status.ContainerStatuses = nil
	resolved := rev.DeepCopy()
	resolved.Status.ContainerStatuses = []servingv1.ContainerStatus{{Name: "user-container", ImageDigest: helloDigest}}
	readyRev := resolved.DeepCopy()
	readyRev.Status.Conditions[0].Status = corev1.ConditionTrue
	failedRev := resolved.DeepCopy()
	failedRev.Status.Conditions[0] = apis.Condition{Type: apis.ConditionReady, Status: corev1.ConditionFalse, Reason: "ContainerMissing", Message: "pulling 127.0.0.1:5000/nope:\n not found"}
	pod := corev1.Pod{}
	pod.Name = "hello-00002-deployment-abc"
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: UserContainer, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}

	tests := []struct {
		name     string
		state    RolloutState
		wantLast Step // the last step reached; -1 for none
		wantDone bool
		wantErr  string
	}{
		{name: "service not observed yet", state: RolloutState{Service: svcAt(1, corev1.ConditionTrue, "hello-00001"), Generation: 2, Configuration: cfg, Revision: readyRev}, wantLast: -1},
		{name: "configuration behind", state: RolloutState{Service: svcAt(2, corev1.ConditionUnknown, "hello-00001"), Generation: 2, Configuration: staleCfg}, wantLast: -1},
		{name: "revision not read yet", state: RolloutState{Service: svcAt(2, corev1.ConditionUnknown, "hello-00001"), Generation: 2, Configuration: cfg}, wantLast: -1},
		{name: "created", state: RolloutState{Service: svcAt(2, corev1.ConditionUnknown, "hello-00001"), Generation: 2, Configuration: cfg, Revision: &rev}, wantLast: StepRevisionCreated},
		{name: "resolved", state: RolloutState{Service: svcAt(2, corev1.ConditionUnknown, "hello-00001"), Generation: 2, Configuration: cfg, Revision: resolved}, wantLast: StepImageResolved},
		{name: "started", state: RolloutState{Service: svcAt(2, corev1.ConditionUnknown, "hello-00001"), Generation: 2, Configuration: cfg, Revision: resolved, Pods: []corev1.Pod{pod}}, wantLast: StepContainerStarted},
		{name: "revision ready, route behind", state: RolloutState{Service: svcAt(2, corev1.ConditionTrue, "hello-00001"), Generation: 2, Configuration: cfg, Revision: readyRev, Pods: []corev1.Pod{pod}}, wantLast: StepRevisionReady},
		{name: "done", state: RolloutState{Service: svcAt(2, corev1.ConditionTrue, "hello-00002"), Generation: 2, Configuration: cfg, Revision: readyRev, Pods: []corev1.Pod{pod}}, wantLast: StepRouteReady, wantDone: true},
		{name: "failed", state: RolloutState{Service: svcAt(2, corev1.ConditionFalse, "hello-00001"), Generation: 2, Configuration: cfg, Revision: failedRev},
			wantLast: StepImageResolved, wantErr: "revision hello-00002 failed: ContainerMissing: pulling 127.0.0.1:5000/nope: not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Observe(tt.state)
			last := Step(-1)
			for s := range numSteps {
				if r.Reached[s] != "" {
					last = s
				}
			}
			if last != tt.wantLast {
				t.Errorf("last step = %d, want %d (%q)", last, tt.wantLast, r.Reached)
			}
			if r.Done != tt.wantDone {
				t.Errorf("done = %v, want %v", r.Done, tt.wantDone)
			}
			if (r.Err == nil) != (tt.wantErr == "") || (r.Err != nil && r.Err.Error() != tt.wantErr) {
				t.Errorf("err = %v, want %q", r.Err, tt.wantErr)
			}
		})
	}

	// An update that stamps no new revision (a traffic change) says so.
	r := Observe(RolloutState{Service: svcAt(2, corev1.ConditionTrue, "hello-00002"), Generation: 2, Previous: "hello-00002", Configuration: cfg, Revision: readyRev})
	if !strings.Contains(r.Reached[StepRevisionCreated], "unchanged") || !r.Done {
		t.Errorf("traffic-only update: %q done %v, want the revision unchanged and done", r.Reached[StepRevisionCreated], r.Done)
	}
}
