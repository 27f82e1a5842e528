#!/usr/bin/env bash
# Stops the gantry server hack/up.sh started: SIGTERM, then waits for its clean exit.
set -euo pipefail
pidfile=/run/gantry.pid
if [ ! -f "$pidfile" ] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "no gantry server started by make up is running"
  rm -f "$pidfile"
  exit 0
fi
pid=$(cat "$pidfile")
kill -TERM "$pid"
for _ in $(seq 1 120); do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pidfile"
    echo "gantry server stopped"
    # The pods' sandboxes outlive the server (a restart re-adopts them); remove them too.
    "$(dirname "$0")/../bin/gantry" cleanup --data-dir "${GANTRY_DATA_DIR:-/var/lib/gantry}"
    exit 0
  fi
  sleep 0.5
done
echo "gantry server (pid $pid) did not stop within 60s" >&2
exit 1
