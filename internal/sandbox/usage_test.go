package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeCgroups is a cgroup v1 tree in a temporary directory: cpuacct and memory hierarchies
// with the files usage reads.
type fakeCgroups struct {
	t     *testing.T
	roots *cgroupRoots
}

func newFakeCgroups(t *testing.T) *fakeCgroups {
	dir := t.TempDir()
	return &fakeCgroups{t: t, roots: &cgroupRoots{byController: map[string]string{
		"cpu":     filepath.Join(dir, "cpu"),
		"cpuacct": filepath.Join(dir, "cpuacct"),
		"memory":  filepath.Join(dir, "memory"),
	}}}
}

// set writes a cgroup's counters: CPU nanoseconds, memory usage and inactive file bytes.
func (f *fakeCgroups) set(path string, cpuNS, memUsage, inactiveFile string) {
	f.t.Helper()
	write := func(ctrl, file, v string) {
		d := filepath.Join(f.roots.byController[ctrl], path)
		if err := os.MkdirAll(d, 0o755); err != nil {
			f.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, file), []byte(v), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	write("cpuacct", "cpuacct.usage", cpuNS+"\n")
	write("memory", "memory.usage_in_bytes", memUsage+"\n")
	write("memory", "memory.stat", "cache 100\nrss 200\ninactive_file 7\nactive_file 9\ntotal_cache 100\ntotal_inactive_file "+inactiveFile+"\ntotal_active_file 9\n")
}

func TestPodUsageReadsThePodAndItsContainers(t *testing.T) {
	f := newFakeCgroups(t)
	f.set("/gantry/pod1", "3000000000", "50000000", "10000000")
	f.set("/gantry/pod1/user-container", "2500000000", "40000000", "8000000")
	f.set("/gantry/pod1/queue-proxy", "400000000", "9000000", "1000000")
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

	got, err := f.roots.podUsage("/gantry/pod1", now)
	if err != nil {
		t.Fatal(err)
	}
	want := PodUsage{
		Time: now,
		Pod:  Usage{CPU: 3 * time.Second, MemoryWorkingSet: 40000000},
		Containers: map[string]Usage{
			"user-container": {CPU: 2500 * time.Millisecond, MemoryWorkingSet: 32000000},
			"queue-proxy":    {CPU: 400 * time.Millisecond, MemoryWorkingSet: 8000000},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("podUsage (-want +got):\n%s", diff)
	}
}

func TestUsageOfCgroups(t *testing.T) {
	tests := []struct {
		name                  string
		cpu, memory, inactive string
		want                  Usage
		wantErr               bool
	}{
		{"working set is usage less inactive file", "123", "1000", "300", Usage{CPU: 123, MemoryWorkingSet: 700}, false},
		{"never below zero", "0", "100", "300", Usage{MemoryWorkingSet: 0}, false},
		{"cpu that is not a number", "lots", "100", "0", Usage{}, true},
		{"memory that is not a number", "1", "-", "0", Usage{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeCgroups(t)
			f.set("/g/p", tt.cpu, tt.memory, tt.inactive)
			got, err := f.roots.usage("/g/p")
			if (err != nil) != tt.wantErr {
				t.Fatalf("usage: error %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("usage (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUsageOfAMissingCgroupIsNotFound(t *testing.T) {
	f := newFakeCgroups(t)
	if _, err := f.roots.podUsage("/gantry/gone", time.Now()); !errors.Is(err, ErrNotFound) {
		t.Errorf("podUsage of a missing cgroup: %v, want ErrNotFound", err)
	}
}

func TestCPUAndCPUAcctSharingAHierarchy(t *testing.T) {
	f := newFakeCgroups(t)
	delete(f.roots.byController, "cpuacct")
	d := filepath.Join(f.roots.byController["cpu"], "/p")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "cpuacct.usage"), []byte("42\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cpu, err := readCPUUsage(filepath.Join(f.roots.cpuacctRoot(), "/p"))
	if err != nil || cpu != 42 {
		t.Errorf("readCPUUsage = %v, %v; want 42ns", cpu, err)
	}
}
