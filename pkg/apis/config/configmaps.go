package config

import (
	"fmt"
	"slices"
	"strings"
)

// Namespace is where Gantry keeps its configuration ConfigMaps.
const Namespace = "gantry-system"

// The ConfigMaps, with Knative's names.
const (
	DefaultsConfigName   = "config-defaults"
	FeaturesConfigName   = "config-features"
	AutoscalerConfigName = "config-autoscaler"
	NetworkConfigName    = "config-network"
	DeploymentConfigName = "config-deployment"
)

// ExampleKey holds a ConfigMap's documentation, as in Knative: every key with its default.
// Keys that start with "_" are never read.
const ExampleKey = "_example"

// Names lists the configuration ConfigMaps in a stable order.
func Names() []string {
	return []string{DefaultsConfigName, FeaturesConfigName, AutoscalerConfigName, NetworkConfigName, DeploymentConfigName, ServerlessConfigName, MeteringConfigName}
}

// IsConfigMap reports whether name is one of Gantry's configuration ConfigMaps.
func IsConfigMap(name string) bool { return slices.Contains(Names(), name) }

// Apply parses the data of the ConfigMap called name into c. An error names the ConfigMap and
// the key; c is then unchanged.
func (c *Config) Apply(name string, data map[string]string) error {
	var err error
	switch name {
	case DefaultsConfigName:
		var v *Defaults
		if v, err = NewDefaultsFromMap(data); err == nil {
			c.Defaults = v
		}
	case FeaturesConfigName:
		var v *Features
		if v, err = NewFeaturesFromMap(data); err == nil {
			c.Features = v
		}
	case AutoscalerConfigName:
		var v *Autoscaler
		if v, err = NewAutoscalerFromMap(data); err == nil {
			c.Autoscaler = v
		}
	case NetworkConfigName:
		var v *Network
		if v, err = NewNetworkFromMap(data); err == nil {
			c.Network = v
		}
	case DeploymentConfigName:
		var v *Deployment
		if v, err = NewDeploymentFromMap(data); err == nil {
			c.Deployment = v
		}
	case ServerlessConfigName:
		var v *Serverless
		if v, err = NewServerlessFromMap(data); err == nil {
			c.Serverless = v
		}
	case MeteringConfigName:
		var v *Metering
		if v, err = NewMeteringFromMap(data); err == nil {
			c.Metering = v
		}
	default:
		return fmt.Errorf("%s is not a configuration ConfigMap (want one of %s)", name, strings.Join(Names(), ", "))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Example is the documentation Gantry writes under ExampleKey of the ConfigMap called name
// when it creates it: each key Gantry reads, with its default.
func Example(name string) string {
	return examples[name]
}

var examples = map[string]string{
	DefaultsConfigName: `################################
# Copy a key out of this block to set it. Values shown are the defaults.
################################
# Default timeoutSeconds of a Revision.
revision-timeout-seconds: "300"
# Largest timeoutSeconds a Revision may set.
max-revision-timeout-seconds: "600"
# Default responseStartTimeoutSeconds (0: the timeout applies).
revision-response-start-timeout-seconds: "0"
# Default idleTimeoutSeconds (0: off).
revision-idle-timeout-seconds: "0"
# Default containerConcurrency (0: unlimited) and its upper bound.
container-concurrency: "0"
container-concurrency-max-limit: "1000"
# Default container names.
container-name-template: "user-container"
init-container-name-template: "init-container"
# Default enableServiceLinks of pods: true, false or default (leave unset).
enable-service-links: "false"
`,
	FeaturesConfigName: `################################
# Copy a key out of this block to set it: enabled, allowed or disabled.
################################
kubernetes.podspec-affinity: "disabled"
kubernetes.podspec-nodeselector: "disabled"
kubernetes.podspec-tolerations: "disabled"
kubernetes.podspec-topologyspreadconstraints: "disabled"
kubernetes.podspec-hostaliases: "disabled"
kubernetes.podspec-hostnetwork: "disabled"
kubernetes.podspec-hostpid: "disabled"
kubernetes.podspec-hostipc: "disabled"
kubernetes.podspec-runtimeclassname: "disabled"
kubernetes.podspec-priorityclassname: "disabled"
kubernetes.podspec-schedulername: "disabled"
kubernetes.podspec-securitycontext: "disabled"
kubernetes.podspec-shareprocessnamespace: "disabled"
kubernetes.podspec-dnspolicy: "disabled"
kubernetes.podspec-dnsconfig: "disabled"
kubernetes.podspec-init-containers: "disabled"
kubernetes.podspec-persistent-volume-claim: "disabled"
kubernetes.podspec-persistent-volume-write: "disabled"
kubernetes.podspec-volumes-hostpath: "disabled"
multi-container-probing: "disabled"
tag-header-based-routing: "disabled"
`,
	AutoscalerConfigName: `################################
# Copy a key out of this block to set it. Values shown are the defaults.
# Revisions override them with autoscaling.knative.dev annotations.
################################
enable-scale-to-zero: "true"
container-concurrency-target-percentage: "70"
container-concurrency-target-default: "100"
requests-per-second-target-default: "200"
target-burst-capacity: "211"
activator-capacity: "100"
stable-window: "60s"
panic-window-percentage: "10.0"
panic-threshold-percentage: "200.0"
max-scale-up-rate: "1000.0"
max-scale-down-rate: "2.0"
scale-to-zero-grace-period: "30s"
scale-to-zero-pod-retention-period: "0s"
scale-down-delay: "0s"
initial-scale: "1"
allow-zero-initial-scale: "false"
min-scale: "0"
max-scale: "0"
max-scale-limit: "0"
pod-autoscaler-class: "kpa.autoscaling.knative.dev"
`,
	NetworkConfigName: `################################
# Copy a key out of this block to set it. Values shown are the defaults.
################################
# Host of a Route: .Name, .Namespace, .Domain, .Annotations.
domain-template: "{{.Name}}.{{.Namespace}}.{{.Domain}}"
# Name part of a tag's host: .Tag, .Name.
tag-template: "{{.Tag}}-{{.Name}}"
`,
	DeploymentConfigName: `################################
# Copy a key out of this block to set it. Values shown are the defaults.
################################
# The queue-proxy image; the default is run by the serverless node from the gantry binary.
queue-sidecar-image: "gantry.dev/queue-proxy"
progress-deadline: "600s"
digest-resolution-timeout: "10s"
registries-skipping-tag-resolving: "kind.local,ko.local,dev.local"
queue-sidecar-cpu-request: "25m"
`,
	ServerlessConfigName: `################################
# Copy a key out of this block to set it. Values shown are the defaults (EKS on Fargate's).
################################
# The sizes a serverless pod may get: one line per vCPU size, then its memory sizes in GB,
# each a number or a range lo-hi with an optional step (/4: every 4 GB; 1 GB when unsaid).
# A pod gets the first size, in this order, that holds its requests.
menu: |
  0.25: 0.5, 1, 2
  0.5: 1-4
  1: 2-8
  2: 4-16
  4: 8-30
  8: 16-60/4
  16: 32-120/8
# Memory added to a pod's requests for the node's own parts.
memory-overhead: "256Mi"
# Ephemeral storage of a pod without ephemeral-storage requests, and the least any pod gets;
# with requests a pod gets their sum + 10% + 5Gi, at most ephemeral-storage-max.
ephemeral-storage-default: "20Gi"
ephemeral-storage-max: "175Gi"
`,
}
