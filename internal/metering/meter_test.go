package metering

import (
	"path/filepath"
	"testing"

	"k8s.io/client-go/kubernetes/fake"
)

// TestClockReadsTheWallClockOnly: the meter's readings of time.Now carry no monotonic part.
// Its counters add differences between them and the wall-clock times of the API and the
// database; with the monotonic part, Go takes a difference of two readings from the monotonic
// clock, which parts from the wall clock (by 150 ns in 10 s on a test machine), and a pod's
// counters ended a few hundred byte-seconds off its bill.
func TestClockReadsTheWallClockOnly(t *testing.T) {
	m, err := New(Options{Client: fake.NewClientset(), DBPath: filepath.Join(t.TempDir(), "usage.db")})
	if err != nil {
		t.Fatal(err)
	}
	if now := m.opts.Now(); now != now.Round(0) {
		t.Errorf("the meter's clock read %v, with a monotonic part", now)
	}
}
