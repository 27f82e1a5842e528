#!/usr/bin/env bash
# Starts bin/gantry server in the background with its embedded defaults, waits until the API is
# ready, and shows it working. Stop it with hack/down.sh (make down).
set -euo pipefail
cd "$(dirname "$0")/.."

data_dir=${GANTRY_DATA_DIR:-/var/lib/gantry}
log=${GANTRY_LOG:-/var/log/gantry.log}
pidfile=/run/gantry.pid

if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "gantry server already runs (pid $(cat "$pidfile")); make down stops it"
else
  nohup bin/gantry server --data-dir "$data_dir" >"$log" 2>&1 &
  echo $! >"$pidfile"
  echo "gantry server started (pid $!), log: $log"
  for _ in $(seq 1 240); do
    if grep -q 'msg="API server ready"' "$log"; then break; fi
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "gantry server stopped:"; cat "$log"; exit 1
    fi
    sleep 0.5
  done
  grep 'msg="API server ready"' "$log" || { echo "gantry server not ready after 2m:"; cat "$log"; exit 1; }
fi

export GANTRY_DATA_DIR=$data_dir KUBECONFIG=$data_dir/kubeconfig.yaml
set -x
bin/gantry kubectl get --raw=/readyz; echo
bin/gantry kubectl get namespaces
bin/gantry kubectl get nodes -o wide
# A workload: build the hello test program into the embedded registry, run it, call it.
bin/gantry image build ./test/images/hello 127.0.0.1:5000/hello
bin/gantry kubectl get deployment hello >/dev/null 2>&1 || bin/gantry kubectl create deployment hello --image=127.0.0.1:5000/hello
bin/gantry kubectl wait --for=condition=Available deployment/hello --timeout=2m
curl -s "http://$(bin/gantry kubectl get pod -l app=hello -o jsonpath='{.items[0].status.podIP}'):8080/"
bin/gantry kubectl logs deployment/hello
# Deploy from source: samples/hello becomes an image in the embedded registry and a Knative
# Service with a URL; the gateway answers there.
url=$(bin/gantry deploy samples/hello)
curl -s "$url"
set +x
echo
echo "samples/hello answers at $url"
echo "the dashboard: http://gantry.localhost:8080/ (loopback only; see docs/dashboard.md)"
