// Package scaling owns the KPA's decision: from a revision's settings (config-autoscaler with
// its autoscaling.knative.dev annotations applied), the averages of its metric over the stable
// and panic windows, its ready pods and the time, how many pods it should have, how much burst
// capacity is to spare, and whether the activator belongs in its path. The rules are
// Knative's: rate limits, the panic ratchet, scale-down delay, min/max/initial/activation
// scale, and the way to zero through the grace and retention periods.
//
// Nothing here does I/O or reads a clock; collecting metrics, ticking and applying the scale
// live elsewhere.
package scaling
