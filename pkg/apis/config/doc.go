// Package config owns the operator-tunable settings that SetDefaults and
// Validate of the serving types read: the config-defaults values (revision
// timeouts, container concurrency bounds, default container name) and the
// config-features flags that allow pod fields Knative refuses by default. It
// also carries them in a context.Context, so the webhook loads them once per
// request and the types stay free of I/O.
package config
