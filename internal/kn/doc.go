// Package kn holds the logic of gantry's Knative commands (service, revision, route, deploy,
// top), apart from any API server: it turns their flags into changes of a Service, tells a
// rollout's progress from the objects' status, and prints Services, Revisions and Routes as
// kn does. It does no I/O beyond the io.Writer it is given; internal/cli does the rest.
package kn
