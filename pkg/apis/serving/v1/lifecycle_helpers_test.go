package v1

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gantry-run/gantry/pkg/apis"
)

type fakeClock struct{ t time.Time }

func (f *fakeClock) Now() time.Time { return f.t }

// withClock makes every condition set of this package stamp transitions
// with c for the duration of the test.
func withClock(t *testing.T, c apis.Clock) {
	t.Helper()
	saved := []apis.ConditionSet{serviceCondSet, configurationCondSet, revisionCondSet, routeCondSet}
	serviceCondSet = serviceCondSet.WithClock(c)
	configurationCondSet = configurationCondSet.WithClock(c)
	revisionCondSet = revisionCondSet.WithClock(c)
	routeCondSet = routeCondSet.WithClock(c)
	t.Cleanup(func() {
		serviceCondSet, configurationCondSet, revisionCondSet, routeCondSet = saved[0], saved[1], saved[2], saved[3]
	})
}

func wantCondition(t *testing.T, got *apis.Condition, status corev1.ConditionStatus, reason string, at time.Time) {
	t.Helper()
	if got == nil {
		t.Fatalf("condition missing, want %s", status)
	}
	if got.Status != status || got.Reason != reason {
		t.Errorf("%s = %s/%q, want %s/%q (%s)", got.Type, got.Status, got.Reason, status, reason, got.Message)
	}
	if ts := metav1.NewTime(at); !got.LastTransitionTime.Equal(&ts) {
		t.Errorf("%s lastTransitionTime = %v, want %v", got.Type, got.LastTransitionTime, ts)
	}
}
