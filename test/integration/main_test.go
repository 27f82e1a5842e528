// Package integration tests Gantry's parts against one real, in-process control plane
// (internal/testenv), started once for the package.
package integration

import (
	"testing"

	"github.com/gantry-run/gantry/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.Main(m)
}
