package proccpu

import (
	"testing"
	"time"
)

func TestUsedGrowsWithWork(t *testing.T) {
	before := Used()
	if before <= 0 {
		t.Fatalf("Used() = %v at the start of a test, want the CPU time a running process has used", before)
	}
	// Spin until the process has used 20 ms more, within 10 s of wall time.
	deadline := time.Now().Add(10 * time.Second)
	for Used()-before < 20*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("Used() went from %v to %v while this test spun for 10 s", before, Used())
		}
	}
}
