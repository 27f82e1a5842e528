// Package proc reads what the benchmarks measure of a process from /proc.
package proc

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// RSS is the resident set size of process pid in bytes; 0 when it cannot be read.
func RSS(pid int) int64 { return status(pid, "VmRSS") }

// RSSAnon and RSSFile split RSS into anonymous memory (the Go heap, stacks) and file pages
// mapped in (the binary's text, etcd's database); 0 when they cannot be read.
func RSSAnon(pid int) int64 { return status(pid, "RssAnon") }

// RSSFile: see RSSAnon.
func RSSFile(pid int) int64 { return status(pid, "RssFile") }

// status is the field of /proc/<pid>/status counted in kB, in bytes.
func status(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
