// Command gantry is serverless Kubernetes in one binary. main only wires the command tree;
// every command lives in internal/cli.
package main

import (
	"os"

	"github.com/gantry-run/gantry/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args))
}
