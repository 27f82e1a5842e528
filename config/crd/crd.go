// Package crd embeds the generated CRDs (hack/update-codegen.sh writes them), Knative's and
// Gantry's own (serverless.gantry.dev), so gantry server can install them.
package crd

import "embed"

// FS holds the CRD manifests, one YAML file per kind.
//
//go:embed *.yaml
var FS embed.FS
