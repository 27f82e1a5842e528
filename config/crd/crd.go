// Package crd embeds the generated serving.knative.dev CRDs (hack/update-codegen.sh writes
// them) so gantry server can install them.
package crd

import "embed"

// FS holds the CRD manifests, one YAML file per kind.
//
//go:embed *.yaml
var FS embed.FS
