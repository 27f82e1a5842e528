// Package version holds the build's version, set at link time:
// -ldflags "-X github.com/gantry-run/gantry/internal/version.Version=v0.1.0".
package version

// Version is the release this binary was built from.
var Version = "dev"
