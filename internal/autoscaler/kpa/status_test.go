package kpa

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/autoscaler/scaling"
	"github.com/gantry-run/gantry/internal/reconciler/reconcilertest"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	"github.com/gantry-run/gantry/pkg/apis/config"
)

func TestApplyDecision(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 13, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		before     pav1alpha1.PodAutoscalerStatus
		res        scaling.ScaleResult
		ready      int32
		wantActive string // True, False, Unknown
		wantMode   pav1alpha1.Mode
		wantSince  time.Time
		wantDesire *int32
		wantInit   bool
	}{{
		name:       "new, waiting for its first pod",
		res:        scaling.ScaleResult{Valid: true, DesiredScale: 1, ActivatorInPath: true},
		wantActive: "Unknown", wantMode: pav1alpha1.ModeProxy, wantSince: t0, wantDesire: ptr.To[int32](1),
	}, {
		name:       "pods ready and spare capacity: the pods serve",
		before:     pav1alpha1.PodAutoscalerStatus{Mode: pav1alpha1.ModeProxy, ModeSince: timeP(t0.Add(-time.Minute))},
		res:        scaling.ScaleResult{Valid: true, DesiredScale: 2, Initialized: true},
		ready:      2,
		wantActive: "True", wantMode: pav1alpha1.ModeServe, wantSince: t0, wantDesire: ptr.To[int32](2), wantInit: true,
	}, {
		name:       "idle: inactive, the activator takes the route, pods kept for the grace",
		before:     pav1alpha1.PodAutoscalerStatus{Mode: pav1alpha1.ModeServe, ModeSince: timeP(t0.Add(-time.Hour))},
		res:        scaling.ScaleResult{Valid: true, DesiredScale: 1, ActivatorInPath: true, Inactive: true, Initialized: true},
		ready:      1,
		wantActive: "False", wantMode: pav1alpha1.ModeProxy, wantSince: t0, wantDesire: ptr.To[int32](1), wantInit: true,
	}, {
		name:       "at zero",
		before:     pav1alpha1.PodAutoscalerStatus{Mode: pav1alpha1.ModeProxy, ModeSince: timeP(t0.Add(-time.Minute))},
		res:        scaling.ScaleResult{Valid: true, DesiredScale: 0, ActivatorInPath: true, Initialized: true},
		wantActive: "False", wantMode: pav1alpha1.ModeProxy, wantSince: t0.Add(-time.Minute), wantDesire: ptr.To[int32](0), wantInit: true,
	}, {
		name:       "no data: the scale and the mode stay",
		before:     pav1alpha1.PodAutoscalerStatus{Mode: pav1alpha1.ModeServe, ModeSince: timeP(t0.Add(-time.Minute)), DesiredScale: ptr.To[int32](3)},
		res:        scaling.ScaleResult{},
		ready:      3,
		wantActive: "True", wantMode: pav1alpha1.ModeServe, wantSince: t0.Add(-time.Minute), wantDesire: ptr.To[int32](3),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.before
			applyDecision(&s, tt.res, tt.ready, t0)
			if got := string(s.GetCondition(pav1alpha1.PodAutoscalerConditionActive).Status); got != tt.wantActive {
				t.Errorf("Active = %s, want %s", got, tt.wantActive)
			}
			if s.Mode != tt.wantMode || !s.ModeSince.Time.Equal(tt.wantSince) {
				t.Errorf("mode %s since %v, want %s since %v", s.Mode, s.ModeSince, tt.wantMode, tt.wantSince)
			}
			if ptr.Deref(s.DesiredScale, -1) != ptr.Deref(tt.wantDesire, -1) || ptr.Deref(s.ActualScale, -1) != tt.ready {
				t.Errorf("desired %v actual %v, want %v and %d", ptr.Deref(s.DesiredScale, -1), ptr.Deref(s.ActualScale, -1), ptr.Deref(tt.wantDesire, -1), tt.ready)
			}
			if s.ScaleTargetInitialized() != tt.wantInit {
				t.Errorf("ScaleTargetInitialized = %v, want %v", s.ScaleTargetInitialized(), tt.wantInit)
			}
		})
	}
}

func timeP(t time.Time) *metav1.Time { return &metav1.Time{Time: t} }

func TestQuietRevisionsAreDecidedRarely(t *testing.T) {
	a := New(Options{Config: config.Static{}})
	key := types.NamespacedName{Namespace: "ns", Name: "rev-00001"}
	r := &revision{quiet: true}
	a.revs[key] = r
	decided := 0
	// A quiet revision with no PodAutoscaler in a client: each decision attempt is counted
	// through quietTicks being reset, which only a decision does.
	for range 3 * quietEvery {
		before := r.quietTicks
		r.mu.Lock()
		skip := r.quiet && r.quietTicks < quietEvery-1
		r.mu.Unlock()
		a.tickWith(key, func() { decided++; r.quietTicks = 0 })
		if skip && r.quietTicks != before+1 {
			t.Fatalf("a skipped tick did not count: %d → %d", before, r.quietTicks)
		}
	}
	if decided != 3 {
		t.Errorf("a quiet revision was decided %d times in %d ticks, want 3", decided, 3*quietEvery)
	}
	a.wake(key)
	decided = 0
	a.tickWith(key, func() { decided++ })
	if decided != 1 {
		t.Error("a woken revision was not decided at its next tick")
	}
}

func TestANewPodAutoscalerUnderAnOldNameStartsAfresh(t *testing.T) {
	a := New(Options{Client: reconcilertest.NewClient().WithIndex(&corev1.Pod{}, podRevisionIndex, podRevision).Build(), Config: config.Static{}})
	pa := &pav1alpha1.PodAutoscaler{}
	pa.Namespace, pa.Name, pa.UID = "ns", "hello-00001", "first"
	ctx := context.Background()
	first, err := a.revision(ctx, pa)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := a.revision(ctx, pa); again != first {
		t.Fatal("the same PodAutoscaler got new state")
	}
	pa.UID = "second"
	second, err := a.revision(ctx, pa)
	if err != nil {
		t.Fatal(err)
	}
	if second == first || second.uid != "second" {
		t.Fatal("a new PodAutoscaler under the old name kept the old one's state")
	}
}
