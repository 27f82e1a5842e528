package sandbox

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// lowestOOMScoreAdj is the lowest OOM score adjustment this process may give the processes
// it starts: any with CAP_SYS_RESOURCE, else no lower than its own (the kernel refuses to
// lower it further, and runc then fails to start the container). Hosts that run gantry in
// a container without that capability get the pods' adjustments raised to it.
func lowestOOMScoreAdj() int {
	if hasCapability(unix.CAP_SYS_RESOURCE) {
		return -1000
	}
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 1000
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 1000
	}
	return n
}

// hasCapability reports whether this process holds capability c in its effective set.
func hasCapability(c int) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<uint(c)) != 0
		}
	}
	return false
}
