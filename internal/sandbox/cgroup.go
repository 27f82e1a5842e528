package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cpuPeriod is the CFS period the CPU quotas are expressed in (100 ms), as Kubernetes does.
const cpuPeriod = 100000

// cgroupRoots are the mounted cgroup hierarchies: v1 ones by controller, plus every mount
// (v1 and v2) for cleanup.
type cgroupRoots struct {
	byController map[string]string // "memory" → /sys/fs/cgroup/memory
	all          []string
	v2           bool // the host is cgroup v2 only
}

func findCgroupRoots() (*cgroupRoots, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := &cgroupRoots{byController: map[string]string{}}
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+3 >= len(fields) || len(fields) < 5 {
			continue
		}
		fstype, mp, root := fields[sep+1], unescapeMountPath(fields[4]), fields[3]
		if (fstype != "cgroup" && fstype != "cgroup2") || root != "/" || seen[mp] {
			continue
		}
		seen[mp] = true
		r.all = append(r.all, mp)
		if fstype == "cgroup2" {
			if mp == "/sys/fs/cgroup" {
				r.v2 = true
			}
			continue
		}
		for _, opt := range strings.Split(fields[sep+3], ",") {
			switch opt {
			case "cpu", "cpuacct", "memory", "pids", "cpuset", "devices", "freezer", "blkio":
				r.byController[opt] = mp
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if r.v2 {
		return nil, errors.New("cgroup v2-only hosts are not supported yet: this package drives cgroup v1 (or hybrid) hierarchies")
	}
	for _, c := range []string{"memory", "cpu"} {
		if r.byController[c] == "" {
			return nil, fmt.Errorf("the cgroup v1 %s controller is not mounted", c)
		}
	}
	return r, nil
}

// createPod makes the pod cgroup and sets its limits: a CPU quota of millis*100 µs per 100 ms
// period and a memory limit. Zero means no limit.
func (r *cgroupRoots) createPod(path string, cpuMillis, memoryBytes int64) error {
	mem := filepath.Join(r.byController["memory"], path)
	cpu := filepath.Join(r.byController["cpu"], path)
	for _, d := range []string{mem, cpu} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating cgroup %s: %w", d, err)
		}
	}
	if memoryBytes > 0 {
		if err := writeCgroup(mem, "memory.limit_in_bytes", strconv.FormatInt(memoryBytes, 10)); err != nil {
			return err
		}
	}
	if cpuMillis > 0 {
		if err := writeCgroup(cpu, "cpu.cfs_period_us", strconv.Itoa(cpuPeriod)); err != nil {
			return err
		}
		if err := writeCgroup(cpu, "cpu.cfs_quota_us", strconv.FormatInt(cpuMillis*cpuPeriod/1000, 10)); err != nil {
			return err
		}
	}
	return nil
}

func writeCgroup(dir, file, value string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0); err != nil {
		return fmt.Errorf("setting cgroup %s: %w", filepath.Join(dir, file), err)
	}
	return nil
}

// remove deletes the cgroup at path and everything below it, in every hierarchy. A cgroup
// that still has processes cannot be removed; rmdir is retried briefly because the kernel
// releases an emptied cgroup asynchronously.
func (r *cgroupRoots) remove(path string) error {
	var errs []error
	for _, root := range r.all {
		if err := removeCgroupTree(filepath.Join(root, path)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func removeCgroupTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	var last error
	for i := 0; i < 50; i++ {
		last = os.Remove(dir)
		if last == nil || errors.Is(last, os.ErrNotExist) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("removing cgroup %s: %w", dir, last)
}

// oomKills reads the memory cgroup's OOM-kill counter (memory.oom_control's oom_kill); -1
// when the cgroup or the counter does not exist. cgroup v1 counts a kill in the cgroup whose
// limit was hit, not in its ancestors.
func (r *cgroupRoots) oomKills(path string) int64 {
	b, err := os.ReadFile(filepath.Join(r.byController["memory"], path, "memory.oom_control"))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}
