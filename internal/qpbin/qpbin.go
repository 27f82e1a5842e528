// Package qpbin holds the queue-proxy's own binary (cmd/gantry-queue-proxy) inside the gantry
// binary, and installs it where the serverless node binds it into pods. That binary starts in
// a few milliseconds; the gantry binary spends about 100 ms initializing the Kubernetes
// packages it links before main runs, and every cold start waits for its pod's queue-proxy.
//
// A plain `go build ./cmd/gantry` carries no queue-proxy binary, and the node then runs the
// queue-proxy from the gantry binary itself. hack/build.sh (make build) builds the
// queue-proxy first and builds gantry with a Go build overlay that adds one file to this
// package: it embeds the queue-proxy's binary and sets binary to it, and digest to the start of
// its SHA-256 (reckoned once, at the build, not at every start). Nothing generated lives in the
// source tree.
package qpbin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gantry-run/gantry/internal/atomicfile"
)

// binary is the queue-proxy's binary, nil in a gantry built without it; digest is the hex of
// the first 8 bytes of its SHA-256.
var (
	binary []byte
	digest string
)

// filePrefix starts the name of every installed queue-proxy binary; a digest of its content
// ends it.
const filePrefix = "queue-proxy-"

// Install writes the queue-proxy's binary into dir (made if missing) under a name of its
// content's digest, unless a regular file of that name and size is there (written whole by
// an earlier start: files are renamed into place), removes those of other builds and returns
// its path; "" when this gantry carries none. Pods that run the queue-proxy of a removed file
// keep it: their mounts hold the file, not its name.
func Install(dir string) (string, error) {
	return install(dir, binary, digest)
}

func install(dir string, bin []byte, digest string) (string, error) {
	if len(bin) == 0 {
		return "", nil
	}
	name := filePrefix + digest
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("installing the queue-proxy binary: %w", err)
	}
	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() || fi.Size() != int64(len(bin)) {
		if err := atomicfile.Write(path, bin, 0o755); err != nil {
			return "", fmt.Errorf("installing the queue-proxy binary: %w", err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("installing the queue-proxy binary: %w", err)
	}
	var errs []error
	for _, e := range entries {
		// Those of other builds, and the temporary files of writes cut short.
		if (strings.HasPrefix(e.Name(), filePrefix) || strings.HasPrefix(e.Name(), "."+filePrefix)) && e.Name() != name {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("removing the queue-proxy binaries of other builds: %w", err)
	}
	return path, nil
}

// Binary is the queue-proxy binary for the serverless node to bind into pods: the one this
// gantry carries, installed into dir, else gantry's own executable, which runs the
// queue-proxy too (`gantry queue-proxy`), only slower to start.
func Binary(dir string) (string, error) {
	path, err := Install(dir)
	if err != nil || path != "" {
		return path, err
	}
	return os.Executable()
}
