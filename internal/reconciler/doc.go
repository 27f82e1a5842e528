// Package reconciler holds one level-based controller per serving.knative.dev kind, in a
// subpackage each; child objects are built by pure functions in each kind's resources/
// package. This package wires them into a controller-runtime manager.
package reconciler
