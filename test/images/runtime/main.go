// Command runtime is the test image that reports what a container sees, as JSON, so tests
// can check the runtime contract: environment, request headers and host, cgroup limits
// (v1 and v2), user and groups, arguments, hostname, visible PIDs, whether /proc/sys is
// read-only, and whether stdin reads EOF.
package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gantry-run/gantry/test/images/internal/serve"
)

// Report is the JSON document the image returns.
type Report struct {
	Env             map[string]string   `json:"env"`
	Headers         map[string][]string `json:"headers"`
	Host            string              `json:"host"`
	Method          string              `json:"method"`
	URI             string              `json:"uri"`
	Cgroup          Cgroup              `json:"cgroup"`
	User            User                `json:"user"`
	Args            []string            `json:"args"`
	Hostname        string              `json:"hostname"`
	PIDs            []int               `json:"pids"`
	ProcSysReadOnly bool                `json:"procSysReadOnly"`
	Stdin           Stdin               `json:"stdin"`
	// Files holds the contents of the files named by ?file= (repeatable), or the error
	// reading each: tests check mounted volumes with it.
	Files map[string]string `json:"files,omitempty"`
}

// Cgroup holds the raw limit files that exist (keyed by path relative to the cgroup root)
// and the limits derived from them. A nil derived value means unlimited or unknown.
type Cgroup struct {
	Files            map[string]string `json:"files"`
	MemoryLimitBytes *int64            `json:"memoryLimitBytes"`
	CPUMillicores    *int64            `json:"cpuMillicores"`
}

// User is the process's identity.
type User struct {
	UID    int   `json:"uid"`
	GID    int   `json:"gid"`
	EUID   int   `json:"euid"`
	EGID   int   `json:"egid"`
	Groups []int `json:"groups"`
}

// Stdin says what a read from stdin returned at startup.
type Stdin struct {
	EOF   bool   `json:"eof"`
	Error string `json:"error,omitempty"`
}

// cgroupFiles are read relative to the cgroup root: v1 then v2.
var cgroupFiles = []string{
	"memory/memory.limit_in_bytes",
	"cpu/cpu.cfs_quota_us",
	"cpu/cpu.cfs_period_us",
	"cpu,cpuacct/cpu.cfs_quota_us",
	"cpu,cpuacct/cpu.cfs_period_us",
	"memory.max",
	"cpu.max",
}

// collector gathers a Report from files under its roots; tests point the roots at fixtures.
type collector struct {
	cgroupRoot string
	procRoot   string
	args       []string
	stdin      func() Stdin
}

func main() {
	// "runtime -check-file PATH" exits 0 when PATH exists, else 1: an exec probe.
	if len(os.Args) == 3 && os.Args[1] == "-check-file" {
		if _, err := os.Stat(os.Args[2]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	// "runtime -log-kib-per-s N" also prints N KiB of lines a second, for ever: a pod that
	// fills its logs.
	if len(os.Args) == 3 && os.Args[1] == "-log-kib-per-s" {
		if n, err := strconv.Atoi(os.Args[2]); err == nil && n > 0 {
			go printForever(n)
		}
	}
	s := probeStdin(os.Stdin, 2*time.Second)
	c := &collector{
		cgroupRoot: "/sys/fs/cgroup",
		procRoot:   "/proc",
		args:       os.Args,
		stdin:      func() Stdin { return s },
	}
	serve.Main("runtime", c)
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := Report{
		Env:      environ(),
		Headers:  r.Header,
		Host:     r.Host,
		Method:   r.Method,
		URI:      r.URL.RequestURI(),
		Cgroup:   readCgroup(c.cgroupRoot),
		User:     currentUser(),
		Args:     c.args,
		PIDs:     listPIDs(c.procRoot),
		Stdin:    c.stdin(),
		Hostname: hostname(),
	}
	rep.ProcSysReadOnly = readOnly(filepath.Join(c.procRoot, "sys"))
	for _, f := range r.URL.Query()["file"] {
		if rep.Files == nil {
			rep.Files = map[string]string{}
		}
		b, err := os.ReadFile(f)
		if err != nil {
			rep.Files[f] = "error: " + err.Error()
			continue
		}
		rep.Files[f] = string(b)
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
}

func environ() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
}

func currentUser() User {
	groups, _ := os.Getgroups()
	return User{UID: os.Getuid(), GID: os.Getgid(), EUID: os.Geteuid(), EGID: os.Getegid(), Groups: groups}
}

func readCgroup(root string) Cgroup {
	cg := Cgroup{Files: map[string]string{}}
	for _, f := range cgroupFiles {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue
		}
		cg.Files[f] = strings.TrimSpace(string(b))
	}
	// cgroup v2 first: a v2 host has no v1 files.
	if v, ok := cg.Files["memory.max"]; ok {
		cg.MemoryLimitBytes = parseLimit(v)
	} else if v, ok := cg.Files["memory/memory.limit_in_bytes"]; ok {
		// v1 reports "no limit" as a huge page-aligned number.
		if n := parseLimit(v); n != nil && *n < 1<<62 {
			cg.MemoryLimitBytes = n
		}
	}
	if v, ok := cg.Files["cpu.max"]; ok {
		quota, period, _ := strings.Cut(v, " ")
		cg.CPUMillicores = millicores(parseLimit(quota), parseLimit(period))
	} else {
		for _, dir := range []string{"cpu", "cpu,cpuacct"} {
			q, okq := cg.Files[dir+"/cpu.cfs_quota_us"]
			p, okp := cg.Files[dir+"/cpu.cfs_period_us"]
			if okq && okp {
				cg.CPUMillicores = millicores(parseLimit(q), parseLimit(p))
				break
			}
		}
	}
	return cg
}

// parseLimit reads a cgroup number; "max" and negative values (v1's -1) mean no limit.
func parseLimit(s string) *int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return nil
	}
	return &n
}

func millicores(quota, period *int64) *int64 {
	if quota == nil || period == nil || *period == 0 {
		return nil
	}
	m := *quota * 1000 / *period
	return &m
}

// listPIDs returns the numeric entries of the proc root, sorted.
func listPIDs(procRoot string) []int {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	return pids
}

// readOnly reports whether the filesystem holding path is mounted read-only.
func readOnly(path string) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return false
	}
	const stRDONLY = 0x1
	return st.Flags&stRDONLY != 0
}

// probeStdin reads one byte from r and reports whether it saw EOF within the timeout.
// A read that blocks past the timeout (an open terminal or pipe) is not EOF.
func probeStdin(r io.Reader, timeout time.Duration) Stdin {
	result := make(chan Stdin, 1)
	go func() {
		buf := make([]byte, 1)
		_, err := r.Read(buf)
		s := Stdin{}
		switch {
		case errors.Is(err, io.EOF):
			s.EOF = true
		case err != nil:
			s.Error = err.Error()
		default:
			s.Error = "read data from stdin"
		}
		result <- s
	}()
	select {
	case s := <-result:
		return s
	case <-time.After(timeout):
		return Stdin{Error: "stdin read blocked for " + timeout.String()}
	}
}

// printForever prints kib KiB of lines a second to stdout, a tenth of it every 100 ms.
func printForever(kib int) {
	line := strings.Repeat("x", 1023) + "\n"
	for range time.Tick(100 * time.Millisecond) {
		_, _ = os.Stdout.WriteString(strings.Repeat(line, max(kib/10, 1)))
	}
}
