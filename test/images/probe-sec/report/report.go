// Package report is what test/images/probe-sec prints and serves, for the tests that read it.
package report

// Report is one look at a process's privileges from inside its container.
type Report struct {
	UID    int   `json:"uid"`
	GID    int   `json:"gid"`
	Groups []int `json:"groups"`
	// Status holds the fields of /proc/self/status about privileges: CapInh, CapPrm, CapEff,
	// CapBnd, CapAmb, NoNewPrivs, Seccomp.
	Status map[string]string `json:"status"`
	// RootWrite is "ok" when a file could be made in /, else the error.
	RootWrite string `json:"rootWrite"`
	// IOUringSetup is "ok" when io_uring_setup made a ring, else the errno's name.
	IOUringSetup string `json:"ioUringSetup"`
	// Ls lists the directory asked for, or holds the error.
	Ls []string `json:"ls,omitempty"`
}
