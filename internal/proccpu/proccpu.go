// Package proccpu reads the CPU time the running process has used, for benchmarks that report
// CPU per operation beside the time it took.
package proccpu

import (
	"syscall"
	"time"
)

// Used is the CPU time, user and system, this process has used so far; zero when it cannot be
// read.
func Used() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
