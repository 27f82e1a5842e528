package v1alpha1

import (
	"fmt"
	"strconv"
	"strings"
)

// Capacity is a provisioned pod size: vCPU in thousandths and memory in MiB (the menu's
// "GB" are GiB: 0.5GB is 512 MiB).
type Capacity struct {
	MilliCPU  int64
	MemoryMiB int64
}

// String formats c as EKS's CapacityProvisioned annotation: "0.25vCPU 0.5GB", "2vCPU 9GB".
func (c Capacity) String() string {
	return strconv.FormatFloat(float64(c.MilliCPU)/1000, 'f', -1, 64) + "vCPU " +
		strconv.FormatFloat(float64(c.MemoryMiB)/1024, 'f', -1, 64) + "GB"
}

// MemoryBytes is the memory in bytes.
func (c Capacity) MemoryBytes() int64 { return c.MemoryMiB << 20 }

// ParseCapacity reads a CapacityProvisioned annotation written by String.
func ParseCapacity(s string) (Capacity, error) {
	cpu, mem, ok := strings.Cut(strings.TrimSpace(s), " ")
	cpuS, okC := strings.CutSuffix(cpu, "vCPU")
	memS, okM := strings.CutSuffix(strings.TrimSpace(mem), "GB")
	if !ok || !okC || !okM {
		return Capacity{}, fmt.Errorf("capacity %q: want <vCPU>vCPU <GB>GB, e.g. 0.25vCPU 0.5GB", s)
	}
	v, err := strconv.ParseFloat(cpuS, 64)
	if err != nil || v <= 0 || v > 1024 {
		return Capacity{}, fmt.Errorf("capacity %q: vCPU %q is not a positive number", s, cpuS)
	}
	g, err := strconv.ParseFloat(memS, 64)
	if err != nil || g <= 0 || g > 1<<20 {
		return Capacity{}, fmt.Errorf("capacity %q: GB %q is not a positive number", s, memS)
	}
	c := Capacity{MilliCPU: int64(v*1000 + 0.5), MemoryMiB: int64(g*1024 + 0.5)}
	if c.MilliCPU == 0 || c.MemoryMiB == 0 {
		return Capacity{}, fmt.Errorf("capacity %q: too small", s)
	}
	return c, nil
}
