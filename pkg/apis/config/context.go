package config

import "context"

// Config is everything defaulting and validation may read.
type Config struct {
	Defaults *Defaults
	Features *Features
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
	out := &Config{}
	if c := FromContext(ctx); c != nil {
		out.Defaults, out.Features = c.Defaults, c.Features
	}
	if out.Defaults == nil {
		out.Defaults = NewDefaults()
	}
	if out.Features == nil {
		out.Features = &Features{}
	}
	return out
}
