package config

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// ServerlessConfigName is the ConfigMap of serverless pod sizing: the menu of sizes, the
// memory overhead of a serverless node and the ephemeral storage bounds.
const ServerlessConfigName = "config-serverless"

// Serverless is the parsed config-serverless ConfigMap.
type Serverless struct {
	// Menu is the sizes a serverless pod may get, by vCPU, smallest first.
	Menu []MenuRow
	// MemoryOverheadMiB is added to a pod's memory request for the node's own parts (256).
	MemoryOverheadMiB int64
	// EphemeralStorageDefaultBytes is what a pod gets without ephemeral-storage requests,
	// and the least any pod gets (20 GiB).
	EphemeralStorageDefaultBytes int64
	// EphemeralStorageMaxBytes is the most a pod may be given (175 GiB).
	EphemeralStorageMaxBytes int64
}

// MenuRow is one vCPU size and the memory sizes that go with it.
type MenuRow struct {
	// MilliCPU is the vCPU size in thousandths.
	MilliCPU int64
	// MemoryMiB are the memory sizes, smallest first.
	MemoryMiB []int64
}

// DefaultMenu is EKS on Fargate's menu, in the format of config-serverless's "menu" key:
// one line per vCPU size, then its memory sizes in GB, each a number or a range lo-hi with
// an optional step (/4: every 4 GB; 1 GB when unsaid).
const DefaultMenu = `0.25: 0.5, 1, 2
0.5: 1-4
1: 2-8
2: 4-16
4: 8-30
8: 16-60/4
16: 32-120/8`

// NewServerless returns EKS on Fargate's sizing.
func NewServerless() *Serverless {
	menu, err := ParseMenu(DefaultMenu)
	if err != nil {
		panic("config: the default serverless menu does not parse: " + err.Error())
	}
	return &Serverless{
		Menu:                         menu,
		MemoryOverheadMiB:            256,
		EphemeralStorageDefaultBytes: 20 << 30,
		EphemeralStorageMaxBytes:     175 << 30,
	}
}

// NewServerlessFromMap reads the data of a config-serverless ConfigMap, keeping the shipped
// value for every key that is absent. A malformed value or an unknown key is an error naming
// the key.
func NewServerlessFromMap(data map[string]string) (*Serverless, error) {
	s := NewServerless()
	p := newParser(data)
	if v, ok := p.value("menu"); ok {
		menu, err := ParseMenu(v)
		if err != nil {
			p.failf("menu", "%v", err)
		} else {
			s.Menu = menu
		}
	}
	quantity := func(key string, dst *int64, lo, hi int64) {
		v, ok := p.value(key)
		if !ok {
			return
		}
		q, err := resource.ParseQuantity(v)
		if err != nil {
			p.failf(key, "%q is not a quantity (e.g. 256Mi, 20Gi)", v)
			return
		}
		b := q.Value()
		if b < lo || b > hi {
			p.failf(key, "%s must be in [%s, %s]", v, bytesString(lo), bytesString(hi))
			return
		}
		*dst = b
	}
	overhead := s.MemoryOverheadMiB << 20
	quantity("memory-overhead", &overhead, 0, 64<<30)
	s.MemoryOverheadMiB = (overhead + 1<<20 - 1) >> 20
	quantity("ephemeral-storage-default", &s.EphemeralStorageDefaultBytes, 1<<20, 1<<50)
	quantity("ephemeral-storage-max", &s.EphemeralStorageMaxBytes, 1<<20, 1<<50)
	if err := p.err(); err != nil {
		return nil, err
	}
	if s.EphemeralStorageMaxBytes < s.EphemeralStorageDefaultBytes {
		return nil, fmt.Errorf("ephemeral-storage-max %s is less than ephemeral-storage-default %s",
			bytesString(s.EphemeralStorageMaxBytes), bytesString(s.EphemeralStorageDefaultBytes))
	}
	return s, nil
}

// ParseMenu reads a menu: one line (or ";"-separated entry) per vCPU size, "<vCPU>: <GB>,
// <GB>, <lo>-<hi>[/<step>]". vCPU sizes must grow from line to line; a GB value must be a
// whole number of MiB.
func ParseMenu(text string) ([]MenuRow, error) {
	var rows []MenuRow
	entries := strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == ';' })
	for i, entry := range entries {
		entry = strings.TrimSpace(entry)
		if entry == "" || strings.HasPrefix(entry, "#") {
			continue
		}
		cpuS, memS, ok := strings.Cut(entry, ":")
		if !ok {
			return nil, fmt.Errorf("entry %d %q: want <vCPU>: <GB>, <GB>, <lo>-<hi>[/<step>]", i+1, entry)
		}
		cpu, err := strconv.ParseFloat(strings.TrimSpace(cpuS), 64)
		milli := int64(math.Round(cpu * 1000))
		if err != nil || milli <= 0 || math.Abs(cpu*1000-float64(milli)) > 1e-6 || cpu > 1024 {
			return nil, fmt.Errorf("entry %d %q: vCPU %q is not a positive number of thousandths", i+1, entry, strings.TrimSpace(cpuS))
		}
		if len(rows) > 0 && milli <= rows[len(rows)-1].MilliCPU {
			return nil, fmt.Errorf("entry %d %q: vCPU sizes must grow from entry to entry", i+1, entry)
		}
		row := MenuRow{MilliCPU: milli}
		for _, item := range strings.Split(memS, ",") {
			mems, err := memItem(strings.TrimSpace(item))
			if err != nil {
				return nil, fmt.Errorf("entry %d %q: %w", i+1, entry, err)
			}
			row.MemoryMiB = append(row.MemoryMiB, mems...)
		}
		slices.Sort(row.MemoryMiB)
		row.MemoryMiB = slices.Compact(row.MemoryMiB)
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no size: want lines of <vCPU>: <GB>, <GB>, <lo>-<hi>[/<step>]")
	}
	return rows, nil
}

// memItem reads "2" or "2-8" or "16-60/4" (GB) into MiB.
func memItem(item string) ([]int64, error) {
	rng, stepS, hasStep := strings.Cut(item, "/")
	loS, hiS, isRange := strings.Cut(rng, "-")
	lo, err := gbToMiB(loS)
	if err != nil {
		return nil, err
	}
	if !isRange {
		if hasStep {
			return nil, fmt.Errorf("memory %q: a step needs a range lo-hi", item)
		}
		return []int64{lo}, nil
	}
	hi, err := gbToMiB(hiS)
	if err != nil {
		return nil, err
	}
	step := int64(1024)
	if hasStep {
		if step, err = gbToMiB(stepS); err != nil {
			return nil, err
		}
	}
	if hi < lo {
		return nil, fmt.Errorf("memory %q: the range ends before it starts", item)
	}
	if (hi-lo)/step > 1000 {
		return nil, fmt.Errorf("memory %q: more than 1000 sizes", item)
	}
	var out []int64
	for m := lo; m <= hi; m += step {
		out = append(out, m)
	}
	return out, nil
}

func gbToMiB(s string) (int64, error) {
	s = strings.TrimSpace(s)
	g, err := strconv.ParseFloat(s, 64)
	mib := int64(math.Round(g * 1024))
	if err != nil || mib <= 0 || g > 1<<20 || math.Abs(g*1024-float64(mib)) > 1e-6 {
		return 0, fmt.Errorf("memory %q is not a positive number of GB that is a whole number of MiB", s)
	}
	return mib, nil
}

func bytesString(b int64) string {
	return resource.NewQuantity(b, resource.BinarySI).String()
}
