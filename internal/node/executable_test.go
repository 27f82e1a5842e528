package node

import (
	"debug/elf"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/gantry-run/gantry/internal/qpbin/qpbintest"
)

func TestNewRefusesABinaryQueueProxiesCannotRun(t *testing.T) {
	base := Options{Client: fake.NewClientset(), Sandboxes: newFakeSandboxes(clocktesting.NewFakeClock(time.Now())), Images: fakeImages{}, StateDir: t.TempDir()}
	for _, exe := range []string{"", qpbintest.WriteELF(t, elf.ET_EXEC, elf.PT_INTERP)} {
		opts := base
		opts.QueueProxyBinary = exe
		if _, err := New(opts); err == nil || !strings.Contains(err.Error(), "which queue-proxies run from") {
			t.Errorf("QueueProxyBinary %q: %v, want an error about the queue-proxy binary", exe, err)
		}
	}
}
