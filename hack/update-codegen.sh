#!/usr/bin/env bash
# Regenerates the deepcopy functions of pkg/apis and the CRDs in config/crd
# with controller-gen. Idempotent: at HEAD it changes nothing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

CONTROLLER_GEN=(go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0)

"${CONTROLLER_GEN[@]}" object paths=./pkg/apis/...
rm -f config/crd/*.yaml
"${CONTROLLER_GEN[@]}" crd paths=./pkg/apis/... output:crd:artifacts:config=config/crd
