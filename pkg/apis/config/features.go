package config

import "strings"

// Features are the config-features flags that allow pod fields the
// serverless contract refuses by default. Every flag is off unless set.
type Features struct {
	PodSpecAffinity                  bool
	PodSpecNodeSelector              bool
	PodSpecTolerations               bool
	PodSpecTopologySpreadConstraints bool
	PodSpecHostAliases               bool
	PodSpecHostNetwork               bool
	PodSpecHostPID                   bool
	PodSpecHostIPC                   bool
	PodSpecRuntimeClassName          bool
	PodSpecPriorityClassName         bool
	PodSpecSchedulerName             bool
	PodSpecSecurityContext           bool
	PodSpecShareProcessNamespace     bool
	PodSpecDNSPolicy                 bool
	PodSpecDNSConfig                 bool
	PodSpecInitContainers            bool
	PodSpecPersistentVolumeClaim     bool
	PodSpecPersistentVolumeWrite     bool
	PodSpecHostPath                  bool
	// MultiContainerProbing lets sidecars declare readiness probes the
	// platform honours; without it only the serving container may.
	MultiContainerProbing bool
	// TagHeaderBasedRouting lets the Knative-Serving-Tag header pick a Route's tagged target.
	TagHeaderBasedRouting bool
}

// flags maps config-features keys to the fields they set.
func (f *Features) flags() map[string]*bool {
	return map[string]*bool{
		"kubernetes.podspec-affinity":                  &f.PodSpecAffinity,
		"kubernetes.podspec-nodeselector":              &f.PodSpecNodeSelector,
		"kubernetes.podspec-tolerations":               &f.PodSpecTolerations,
		"kubernetes.podspec-topologyspreadconstraints": &f.PodSpecTopologySpreadConstraints,
		"kubernetes.podspec-hostaliases":               &f.PodSpecHostAliases,
		"kubernetes.podspec-hostnetwork":               &f.PodSpecHostNetwork,
		"kubernetes.podspec-hostpid":                   &f.PodSpecHostPID,
		"kubernetes.podspec-hostipc":                   &f.PodSpecHostIPC,
		"kubernetes.podspec-runtimeclassname":          &f.PodSpecRuntimeClassName,
		"kubernetes.podspec-priorityclassname":         &f.PodSpecPriorityClassName,
		"kubernetes.podspec-schedulername":             &f.PodSpecSchedulerName,
		"kubernetes.podspec-securitycontext":           &f.PodSpecSecurityContext,
		"kubernetes.podspec-shareprocessnamespace":     &f.PodSpecShareProcessNamespace,
		"kubernetes.podspec-dnspolicy":                 &f.PodSpecDNSPolicy,
		"kubernetes.podspec-dnsconfig":                 &f.PodSpecDNSConfig,
		"kubernetes.podspec-init-containers":           &f.PodSpecInitContainers,
		"kubernetes.podspec-persistent-volume-claim":   &f.PodSpecPersistentVolumeClaim,
		"kubernetes.podspec-persistent-volume-write":   &f.PodSpecPersistentVolumeWrite,
		"kubernetes.podspec-volumes-hostpath":          &f.PodSpecHostPath,
		"multi-container-probing":                      &f.MultiContainerProbing,
		"tag-header-based-routing":                     &f.TagHeaderBasedRouting,
	}
}

// NewFeaturesFromMap reads the data of a config-features ConfigMap. A flag is
// on when its value is "enabled" or "allowed", off when "disabled"; another
// value or a flag Gantry does not know is an error naming the key.
func NewFeaturesFromMap(data map[string]string) (*Features, error) {
	f := &Features{}
	p := newParser(data)
	for key, dst := range f.flags() {
		v, ok := p.value(key)
		if !ok {
			continue
		}
		switch strings.ToLower(v) {
		case "enabled", "allowed":
			*dst = true
		case "disabled":
			*dst = false
		default:
			p.failf(key, "%q is not enabled, allowed or disabled", v)
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return f, nil
}
