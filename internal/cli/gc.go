package cli

import (
	"os"
	"runtime/debug"
)

// serverGCPercent is Go's GC target for gantry server and gantry agent when GOGC is not set.
// Both hold many long-lived objects (the server: etcd, the API server and every component's
// informers in one heap) and allocate little once settled, so collecting at half the live
// heap's growth instead of Go's default of all of it costs little CPU and keeps about a
// quarter of the resident memory off (a thousand idle Knative Services: 941 MB instead of
// 1.1–1.2 GB; docs/benchmarks.md). The queue-proxy keeps Go's default: its heap is small and
// a lower target would only collect it more often.
const serverGCPercent = 50

// tuneGC sets serverGCPercent unless GOGC is set, which the runtime has then applied.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serverGCPercent)
	}
}
