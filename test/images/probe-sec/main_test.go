package main

import (
	"os"
	"testing"
)

func TestReportOfThisProcess(t *testing.T) {
	r := look(t.TempDir())
	if r.UID != os.Getuid() || r.Status["CapBnd"] == "" || r.Status["Seccomp"] == "" {
		t.Errorf("report %+v lacks this process's user or status fields", r)
	}
	if r.IOUringSetup == "" || r.RootWrite == "" {
		t.Errorf("report %+v lacks the io_uring or root write result", r)
	}
}
