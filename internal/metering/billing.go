// Package metering records what every serverless pod was provisioned and for how long, and
// prices it as Fargate bills: per provisioned vCPU and GB, from the start of the pod's image
// pull to its end, rounded up to the second with a one-minute minimum.
//
// A Meter watches pods through the API (so it works against any cluster) and keeps one usage
// record per pod UID in an embedded SQLite database: one writer, short transactions, records
// upserted by UID so that a restart, or a kill -9, neither loses a pod nor counts it twice.
// The billing arithmetic and the report are pure functions of the records, the rates and now.
package metering

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gantry-run/gantry/pkg/apis/config"
)

// Rates are the prices of provisioned capacity, in dollars.
type Rates struct {
	// VCPUHour is the price of one vCPU for an hour.
	VCPUHour float64 `json:"vcpuHour"`
	// GBHour is the price of one GB (GiB) of memory for an hour.
	GBHour float64 `json:"gbHour"`
	// StorageGBHour is the price of one GB of ephemeral storage beyond IncludedStorageGB for
	// an hour.
	StorageGBHour float64 `json:"ephemeralStorageGBHour"`
	// IncludedStorageGB is the ephemeral storage every pod gets at no charge.
	IncludedStorageGB float64 `json:"ephemeralStorageIncludedGB"`
}

// DefaultRates are Fargate's published Linux/x86 rates in us-east-1 (config.NewMetering).
func DefaultRates() Rates {
	m := config.NewMetering()
	return Rates{VCPUHour: m.VCPUHour, GBHour: m.GBHour, StorageGBHour: m.EphemeralStorageGBHour, IncludedStorageGB: m.EphemeralStorageIncludedGB}
}

// The keys of the config-metering ConfigMap (and the flags of gantry usage that override
// them).
const (
	KeyVCPUHour          = "vcpu-hour"
	KeyGBHour            = "gb-hour"
	KeyStorageGBHour     = "ephemeral-storage-gb-hour"
	KeyIncludedStorageGB = "ephemeral-storage-included-gb"
)

// ConfigMapName is the ConfigMap, in Gantry's configuration namespace, that holds the rates.
const ConfigMapName = config.MeteringConfigName

// ParseRates reads the rates from config-metering's data (config.NewMeteringFromMap): a
// missing key keeps its default, a key that starts with "_" is documentation. An error names
// the ConfigMap and every bad key.
func ParseRates(data map[string]string) (Rates, error) {
	m, err := config.NewMeteringFromMap(data)
	if err != nil {
		return Rates{}, fmt.Errorf("%s: %w", ConfigMapName, err)
	}
	return Rates{VCPUHour: m.VCPUHour, GBHour: m.GBHour, StorageGBHour: m.EphemeralStorageGBHour, IncludedStorageGB: m.EphemeralStorageIncludedGB}, nil
}

// ParseRate reads one rate: a finite number, zero or more.
func ParseRate(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("%q must not be negative", s)
	}
	return v, nil
}

// Example documents the ConfigMap's keys with their defaults, as Knative's _example blocks.
func Example() string { return config.Example(ConfigMapName) }

// MinimumSeconds is the least a pod is billed for.
const MinimumSeconds = 60

// BilledSeconds is the time from start to end rounded up to the second, at least a minute.
func BilledSeconds(start, end time.Time) int64 {
	return max(ceilSeconds(end.Sub(start)), MinimumSeconds)
}

// ceilSeconds is d in whole seconds, rounded up; never negative.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// Usage is provisioned capacity over time.
type Usage struct {
	Seconds     int64   `json:"seconds"`
	VCPUSeconds float64 `json:"vcpuSeconds"`
	GBSeconds   float64 `json:"gbSeconds"`
	// StorageGBSeconds counts only the ephemeral storage beyond the included amount.
	StorageGBSeconds float64 `json:"ephemeralStorageGBSeconds"`
}

// Add sums u and o.
func (u Usage) Add(o Usage) Usage {
	return Usage{u.Seconds + o.Seconds, u.VCPUSeconds + o.VCPUSeconds, u.GBSeconds + o.GBSeconds, u.StorageGBSeconds + o.StorageGBSeconds}
}

// Size is a provisioned pod size.
type Size struct {
	MilliCPU   int64 `json:"milliCPU"`
	MemoryMiB  int64 `json:"memoryMiB"`
	StorageMiB int64 `json:"ephemeralStorageMiB"`
}

// VCPU and GB are the size in the units of the rates.
func (s Size) VCPU() float64      { return float64(s.MilliCPU) / 1000 }
func (s Size) GB() float64        { return float64(s.MemoryMiB) / 1024 }
func (s Size) StorageGB() float64 { return float64(s.StorageMiB) / 1024 }

// For is the usage of size s for secs seconds under r (whose included storage is not
// charged).
func (r Rates) For(s Size, secs int64) Usage {
	extra := max(s.StorageGB()-r.IncludedStorageGB, 0)
	return Usage{Seconds: secs, VCPUSeconds: s.VCPU() * float64(secs), GBSeconds: s.GB() * float64(secs), StorageGBSeconds: extra * float64(secs)}
}

// Cost is u's price in dollars.
func (r Rates) Cost(u Usage) float64 {
	return (u.VCPUSeconds*r.VCPUHour + u.GBSeconds*r.GBHour + u.StorageGBSeconds*r.StorageGBHour) / 3600
}
