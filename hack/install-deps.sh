#!/usr/bin/env bash
# Installs what building and testing Gantry need on a fresh Debian/Ubuntu machine, as root:
# the apt packages the sandboxes use (with --test, also those only the tests use) and the Go
# modules. Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    export PATH=$PATH:/usr/local/go/bin
  else
    echo "install-deps: Go is not installed (https://go.dev/dl/; go.mod names the version)" >&2
    exit 1
  fi
fi

# nftables: kube-proxy in nftables mode needs the nft binary (1.0.1 or later).
# runsc: gVisor, for pods of the gvisor RuntimeClass. util-linux: unshare, which makes the
# pods' user namespaces.
packages=(runc runsc util-linux containernetworking-plugins iptables nftables iproute2 ca-certificates curl)
# With --test, what only the tests need: chromium, the headless browser the dashboard's
# end-to-end test drives, and a font for it to lay pages out with (a recommendation of
# chromium's, which --no-install-recommends below leaves out).
if [ "${1:-}" = "--test" ]; then
  packages+=(chromium fonts-liberation)
fi
# With --bench, what only the benchmarks need: wrk, bench/throughput's load generator.
if [ "${1:-}" = "--bench" ]; then
  packages+=(wrk)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

go mod download
