package config

import (
	"fmt"
	"math"
)

// MeteringConfigName is the ConfigMap of the rates gantry usage prices serverless pods at.
const MeteringConfigName = "config-metering"

// Metering is the parsed config-metering ConfigMap: prices in dollars.
type Metering struct {
	// VCPUHour is the price of one provisioned vCPU for an hour ("vcpu-hour").
	VCPUHour float64
	// GBHour is the price of one provisioned GB of memory for an hour ("gb-hour").
	GBHour float64
	// EphemeralStorageGBHour is the price of one GB of ephemeral storage beyond
	// EphemeralStorageIncludedGB for an hour ("ephemeral-storage-gb-hour").
	EphemeralStorageGBHour float64
	// EphemeralStorageIncludedGB is the storage every pod gets at no charge
	// ("ephemeral-storage-included-gb").
	EphemeralStorageIncludedGB float64
}

// NewMetering returns Fargate's Linux/x86 rates in us-east-1.
func NewMetering() *Metering {
	return &Metering{VCPUHour: 0.04048, GBHour: 0.004445, EphemeralStorageGBHour: 0.000111, EphemeralStorageIncludedGB: 20}
}

// NewMeteringFromMap parses config-metering's data; every error names its key.
func NewMeteringFromMap(data map[string]string) (*Metering, error) {
	m := NewMetering()
	p := newParser(data)
	for _, f := range []struct {
		key string
		dst *float64
	}{
		{"vcpu-hour", &m.VCPUHour},
		{"gb-hour", &m.GBHour},
		{"ephemeral-storage-gb-hour", &m.EphemeralStorageGBHour},
		{"ephemeral-storage-included-gb", &m.EphemeralStorageIncludedGB},
	} {
		p.float(f.key, f.dst)
		if v := *f.dst; math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			p.failf(f.key, "%v is not a price: want a number, zero or more", data[f.key])
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return m, nil
}

func init() {
	examples[MeteringConfigName] = fmt.Sprintf(`################################
# Copy a key out of this block to set it. Values shown are the defaults: Fargate's
# Linux/x86 prices in us-east-1, in dollars. gantry usage flags of the same names override.
################################
# One provisioned vCPU for an hour.
vcpu-hour: "%g"
# One provisioned GB of memory for an hour.
gb-hour: "%g"
# One GB of ephemeral storage beyond the included amount for an hour.
ephemeral-storage-gb-hour: "%g"
# The ephemeral storage every pod gets at no charge, in GB.
ephemeral-storage-included-gb: "%g"
`, 0.04048, 0.004445, 0.000111, 20.0)
}
