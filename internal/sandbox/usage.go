package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Usage is what a cgroup has used, read from cgroup v1 files: the CPU time its processes
// have consumed since it was made (cpuacct.usage) and its memory working set, the figure the
// kubelet reports and evicts by (memory.usage_in_bytes less the inactive file cache, which
// the kernel reclaims first).
type Usage struct {
	CPU              time.Duration
	MemoryWorkingSet int64
}

// PodUsage is a sandbox's usage, at Time: its pod cgroup's (every container, the pod's
// overhead included) and each container's that has a cgroup, by name.
type PodUsage struct {
	Time       time.Time
	Pod        Usage
	Containers map[string]Usage
}

// Usage reads the cgroups of sandbox id: the pod's and its running containers' (a container
// has a cgroup from its start until runc deletes it). It only reads; a sandbox without a
// cgroup is ErrNotFound.
func (m *Manager) Usage(id string) (PodUsage, error) {
	if err := checkID("sandbox ID", id); err != nil {
		return PodUsage{}, err
	}
	return m.cgroups.podUsage(m.cgroupPath(id, ""), time.Now())
}

// HostUsage reads the root cgroups: what the whole machine uses, as the kubelet reports for
// its node.
func (m *Manager) HostUsage() (Usage, error) {
	return m.cgroups.usage("/")
}

// podUsage reads the cgroup at path and the cgroups below it, one per container.
func (r *cgroupRoots) podUsage(path string, now time.Time) (PodUsage, error) {
	pod, err := r.usage(path)
	if err != nil {
		return PodUsage{}, err
	}
	u := PodUsage{Time: now, Pod: pod, Containers: map[string]Usage{}}
	entries, err := os.ReadDir(filepath.Join(r.cpuacctRoot(), path))
	if err != nil {
		return PodUsage{}, fmt.Errorf("reading cgroup %s: %w", path, err)
	}
	for _, e := range entries {
		if !e.IsDir() || !idPattern.MatchString(e.Name()) {
			continue
		}
		c, err := r.usage(path + "/" + e.Name())
		if errors.Is(err, ErrNotFound) {
			continue // the container went while we read
		}
		if err != nil {
			return PodUsage{}, err
		}
		u.Containers[e.Name()] = c
	}
	return u, nil
}

// usage reads one cgroup, at path relative to each hierarchy's root.
func (r *cgroupRoots) usage(path string) (Usage, error) {
	cpu, err := readCPUUsage(filepath.Join(r.cpuacctRoot(), path))
	if err != nil {
		return Usage{}, err
	}
	ws, err := readWorkingSet(filepath.Join(r.byController["memory"], path))
	if err != nil {
		return Usage{}, err
	}
	return Usage{CPU: cpu, MemoryWorkingSet: ws}, nil
}

// cpuacctRoot is the cpuacct hierarchy: its own mount, or the one it shares with cpu.
func (r *cgroupRoots) cpuacctRoot() string {
	if d := r.byController["cpuacct"]; d != "" {
		return d
	}
	return r.byController["cpu"]
}

// readCPUUsage reads cpuacct.usage: the nanoseconds of CPU the cgroup's processes, its
// descendants' included, have used.
func readCPUUsage(dir string) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cpuacct.usage"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("cgroup %s: %w", dir, ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("cgroup %s: cpuacct.usage %q: not a count of nanoseconds", dir, strings.TrimSpace(string(b)))
	}
	return time.Duration(n), nil
}

// readWorkingSet is the memory cgroup's usage less its inactive file cache (total_inactive_file
// in memory.stat, which counts descendants), never below zero: the kubelet's working set.
func readWorkingSet(dir string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, "memory.usage_in_bytes"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("cgroup %s: %w", dir, ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	usage, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cgroup %s: memory.usage_in_bytes %q: not a number of bytes", dir, strings.TrimSpace(string(b)))
	}
	stat, err := os.ReadFile(filepath.Join(dir, "memory.stat"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("cgroup %s: %w", dir, ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	var inactive int64
	for _, line := range strings.Split(string(stat), "\n") {
		if v, ok := strings.CutPrefix(line, "total_inactive_file "); ok {
			if inactive, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
				return 0, fmt.Errorf("cgroup %s: memory.stat total_inactive_file %q: not a number", dir, v)
			}
			break
		}
	}
	return max(usage-inactive, 0), nil
}
