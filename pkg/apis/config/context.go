package config

import "context"

// Config is everything defaulting, validation and the reconcilers may read: one parsed value
// per ConfigMap.
type Config struct {
	Defaults   *Defaults
	Features   *Features
	Autoscaler *Autoscaler
	Network    *Network
	Deployment *Deployment
	Serverless *Serverless
	Metering   *Metering
}

// NewConfig is the configuration Knative ships: every ConfigMap absent.
func NewConfig() *Config {
	return &Config{
		Defaults:   NewDefaults(),
		Features:   &Features{},
		Autoscaler: NewAutoscaler(),
		Network:    NewNetwork(),
		Deployment: NewDeployment(),
		Serverless: NewServerless(),
		Metering:   NewMetering(),
	}
}

type cfgKey struct{}

// ToContext returns ctx carrying c.
func ToContext(ctx context.Context, c *Config) context.Context {
	return context.WithValue(ctx, cfgKey{}, c)
}

// FromContext returns the Config carried by ctx, or nil.
func FromContext(ctx context.Context) *Config {
	c, _ := ctx.Value(cfgKey{}).(*Config)
	return c
}

// FromContextOrDefaults returns the Config carried by ctx with any missing
// part replaced by the shipped defaults; it never returns nil.
func FromContextOrDefaults(ctx context.Context) *Config {
	out := NewConfig()
	if c := FromContext(ctx); c != nil {
		if c.Defaults != nil {
			out.Defaults = c.Defaults
		}
		if c.Features != nil {
			out.Features = c.Features
		}
		if c.Autoscaler != nil {
			out.Autoscaler = c.Autoscaler
		}
		if c.Network != nil {
			out.Network = c.Network
		}
		if c.Deployment != nil {
			out.Deployment = c.Deployment
		}
		if c.Serverless != nil {
			out.Serverless = c.Serverless
		}
		if c.Metering != nil {
			out.Metering = c.Metering
		}
	}
	return out
}

// Source gives the configuration in force now. The store that watches Gantry's ConfigMaps is
// one; tests use Static.
type Source interface {
	Load() *Config
}

// Static is a Source that always gives the same configuration.
type Static struct{ Config *Config }

// Load returns s.Config, or the shipped defaults when it is nil.
func (s Static) Load() *Config {
	if s.Config == nil {
		return NewConfig()
	}
	return s.Config
}
