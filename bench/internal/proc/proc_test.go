package proc

import (
	"os"
	"testing"
)

func TestRSSOfThisProcess(t *testing.T) {
	if got := RSS(os.Getpid()); got < 1<<20 {
		t.Errorf("RSS of this test = %d bytes, want at least a MiB", got)
	}
	if got := RSS(-1); got != 0 {
		t.Errorf("RSS of no process = %d, want 0", got)
	}
}
