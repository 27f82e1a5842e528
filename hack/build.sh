#!/usr/bin/env bash
# Builds the gantry binary to OUT (default bin/gantry) carrying the queue-proxy's own binary
# (cmd/gantry-queue-proxy), which pods start in milliseconds where the gantry binary takes
# about 100 ms (internal/qpbin). The queue-proxy is built first; gantry is then built with a Go
# build overlay that adds to internal/qpbin a file embedding it, so nothing generated is
# written into the source tree. Both are static (CGO_ENABLED=0): the node runs the
# queue-proxy in an empty container root. LDFLAGS and GO come from the environment
# (the Makefile sets them).
#
#   hack/build.sh [OUT]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/bin/gantry}
case $out in /*) ;; *) out=$PWD/$out ;; esac
go=${GO:-go}
export CGO_ENABLED=0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$root"
"$go" build -ldflags "${LDFLAGS:-}" -o "$work/queue-proxy" ./cmd/gantry-queue-proxy
# The name it is installed under: the start of its SHA-256, reckoned here once.
digest=$(sha256sum "$work/queue-proxy" | cut -c1-16)
cat > "$work/embedded.go" <<GO
package qpbin

import _ "embed"

//go:embed queue-proxy
var embedded []byte

func init() { binary, digest = embedded, "$digest" }
GO
cat > "$work/overlay.json" <<JSON
{"Replace": {
  "$root/internal/qpbin/zz_embedded.go": "$work/embedded.go",
  "$root/internal/qpbin/queue-proxy": "$work/queue-proxy"
}}
JSON
mkdir -p "$(dirname "$out")"
"$go" build -overlay "$work/overlay.json" -ldflags "${LDFLAGS:-}" -o "$out" ./cmd/gantry
