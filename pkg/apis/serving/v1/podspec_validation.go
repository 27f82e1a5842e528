package v1

import (
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gantry-run/gantry/internal/queue/contract"
	"github.com/gantry-run/gantry/pkg/apis"
	"github.com/gantry-run/gantry/pkg/apis/config"
)

// ReservedEnvVars are set by the platform in every user container.
var ReservedEnvVars = map[string]bool{
	"K_SERVICE":       true,
	"K_CONFIGURATION": true,
	"K_REVISION":      true,
}

// ReservedPaths may not be mount paths.
var ReservedPaths = map[string]bool{"/": true, "/dev": true, "/dev/log": true}

// podSpecAlwaysAllowed are the PodSpec fields a Revision may set.
var podSpecAlwaysAllowed = []string{
	"containers", "volumes", "serviceAccountName", "imagePullSecrets",
	"enableServiceLinks", "automountServiceAccountToken",
}

func podSpecAllowed(f *config.Features) map[string]bool {
	allowed := map[string]bool{}
	for _, k := range podSpecAlwaysAllowed {
		allowed[k] = true
	}
	gated := map[string]bool{
		"affinity":                  f.PodSpecAffinity,
		"nodeSelector":              f.PodSpecNodeSelector,
		"tolerations":               f.PodSpecTolerations,
		"topologySpreadConstraints": f.PodSpecTopologySpreadConstraints,
		"hostAliases":               f.PodSpecHostAliases,
		"hostNetwork":               f.PodSpecHostNetwork,
		"hostPID":                   f.PodSpecHostPID,
		"hostIPC":                   f.PodSpecHostIPC,
		"runtimeClassName":          f.PodSpecRuntimeClassName,
		"priorityClassName":         f.PodSpecPriorityClassName,
		"schedulerName":             f.PodSpecSchedulerName,
		"securityContext":           f.PodSpecSecurityContext,
		"shareProcessNamespace":     f.PodSpecShareProcessNamespace,
		"dnsPolicy":                 f.PodSpecDNSPolicy,
		"dnsConfig":                 f.PodSpecDNSConfig,
		"initContainers":            f.PodSpecInitContainers,
	}
	for k, ok := range gated {
		if ok {
			allowed[k] = true
		}
	}
	return allowed
}

var containerAllowed = setOf("name", "image", "command", "args", "workingDir", "ports",
	"envFrom", "env", "resources", "volumeMounts", "livenessProbe", "readinessProbe",
	"startupProbe", "terminationMessagePath", "terminationMessagePolicy",
	"imagePullPolicy", "securityContext")

var securityContextAllowed = setOf("capabilities", "readOnlyRootFilesystem", "runAsGroup",
	"runAsNonRoot", "runAsUser", "allowPrivilegeEscalation", "seccompProfile")

func setOf(keys ...string) map[string]bool {
	out := make(map[string]bool, len(keys))
	for _, k := range keys {
		out[k] = true
	}
	return out
}

// disallowedKeys returns, sorted, the JSON fields v sets that allowed does
// not list. Working on the JSON form means a field added to the Kubernetes
// types later is refused until someone decides to allow it.
func disallowedKeys(v any, allowed map[string]bool) []string {
	return setKeys(v, allowed, isEmptyJSON)
}

// volumeSourceKeys is disallowedKeys for a volume, where an empty object
// (emptyDir: {}) is a choice of source, not an unset field.
func volumeSourceKeys(v any, allowed map[string]bool) []string {
	return setKeys(v, allowed, func(raw json.RawMessage) bool { return strings.TrimSpace(string(raw)) == "null" })
}

func setKeys(v any, allowed map[string]bool, unset func(json.RawMessage) bool) []string {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil
	}
	var out []string
	for k, raw := range m {
		if allowed[k] || unset(raw) {
			continue
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func isEmptyJSON(raw json.RawMessage) bool {
	switch strings.TrimSpace(string(raw)) {
	case "null", "{}", "[]", `""`:
		return true
	}
	return false
}

// validatePodSpec checks the pod part of a RevisionSpec; errors are relative
// to the spec.
func validatePodSpec(ps *corev1.PodSpec, f *config.Features) *apis.FieldError {
	var errs *apis.FieldError
	if keys := disallowedKeys(ps, podSpecAllowed(f)); len(keys) > 0 {
		errs = errs.Also(apis.ErrDisallowedFields(keys...))
	}
	if ps.ServiceAccountName != "" {
		if msgs := validation.IsDNS1123Subdomain(ps.ServiceAccountName); len(msgs) > 0 {
			errs = errs.Also(apis.ErrInvalidValue(ps.ServiceAccountName, "serviceAccountName", strings.Join(msgs, "; ")))
		}
	}

	volumes, vErrs := validateVolumes(ps.Volumes, f)
	errs = errs.Also(vErrs)

	if len(ps.Containers) == 0 {
		return errs.Also(apis.ErrMissingField("containers"))
	}
	errs = errs.Also(validateContainerNames(ps))
	serving, pErrs := validateServingPorts(ps.Containers)
	errs = errs.Also(pErrs)

	mounted := map[string]bool{}
	for i := range ps.Containers {
		errs = errs.Also(validateContainer(&ps.Containers[i], i == serving, volumes, mounted).ViaFieldIndex("containers", i))
	}
	for i := range ps.InitContainers {
		errs = errs.Also(validateInitContainer(&ps.InitContainers[i], volumes, mounted).ViaFieldIndex("initContainers", i))
	}
	for i, v := range ps.Volumes {
		if v.Name != "" && !mounted[v.Name] {
			errs = errs.Also(apis.ErrInvalidValue(v.Name, "name", "volume is not mounted by any container").ViaFieldIndex("volumes", i))
		}
	}
	return errs
}

func validateContainerNames(ps *corev1.PodSpec) *apis.FieldError {
	var errs *apis.FieldError
	seen := map[string]string{}
	check := func(field string, i int, name string) {
		p := fmt.Sprintf("%s[%d].name", field, i)
		if name == "" {
			return // defaulting names it; Validate after SetDefaults never sees this
		}
		if name == contract.ContainerName {
			errs = errs.Also(apis.ErrInvalidValue(name, p, "the name is reserved"))
		}
		if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
			errs = errs.Also(apis.ErrInvalidValue(name, p, strings.Join(msgs, "; ")))
		}
		if prev, ok := seen[name]; ok {
			errs = errs.Also(apis.ErrGeneric(fmt.Sprintf("duplicate container name %q", name), prev, p))
		}
		seen[name] = p
	}
	for i := range ps.Containers {
		check("containers", i, ps.Containers[i].Name)
	}
	for i := range ps.InitContainers {
		check("initContainers", i, ps.InitContainers[i].Name)
	}
	return errs
}

// validateServingPorts enforces one serving port: with one container it may
// declare at most one port; with several, exactly one container declares
// exactly one port. It returns the serving container's index, or -1.
func validateServingPorts(cs []corev1.Container) (int, *apis.FieldError) {
	var errs *apis.FieldError
	var withPorts []int
	for i := range cs {
		if len(cs[i].Ports) > 1 {
			errs = errs.Also(apis.ErrGeneric("more than one container port is set", "ports").ViaFieldIndex("containers", i))
		}
		if len(cs[i].Ports) > 0 {
			withPorts = append(withPorts, i)
		}
	}
	if len(cs) == 1 {
		return 0, errs
	}
	switch len(withPorts) {
	case 0:
		return -1, errs.Also(apis.ErrGeneric("exactly one container must declare a port when there are several containers", "containers"))
	case 1:
		return withPorts[0], errs
	default:
		var paths []string
		for _, i := range withPorts {
			paths = append(paths, fmt.Sprintf("containers[%d].ports", i))
		}
		return -1, errs.Also(apis.ErrGeneric("only one container may declare a port", paths...))
	}
}

var allowedVolumeSources = []string{"secret", "configMap", "projected", "emptyDir"}

func validateVolumes(vs []corev1.Volume, f *config.Features) (map[string]corev1.Volume, *apis.FieldError) {
	var errs *apis.FieldError
	allowed := setOf(allowedVolumeSources...)
	allowed["name"] = true
	if f.PodSpecPersistentVolumeClaim {
		allowed["persistentVolumeClaim"] = true
	}
	if f.PodSpecHostPath {
		allowed["hostPath"] = true
	}
	byName := map[string]corev1.Volume{}
	for i, v := range vs {
		var ve *apis.FieldError
		if v.Name == "" {
			ve = ve.Also(apis.ErrMissingField("name"))
		} else if msgs := validation.IsDNS1123Label(v.Name); len(msgs) > 0 {
			ve = ve.Also(apis.ErrInvalidValue(v.Name, "name", strings.Join(msgs, "; ")))
		} else if _, dup := byName[v.Name]; dup {
			ve = ve.Also(apis.ErrGeneric(fmt.Sprintf("duplicate volume name %q", v.Name), "name"))
		} else {
			byName[v.Name] = v
		}
		sources := volumeSourceKeys(v, map[string]bool{"name": true})
		switch {
		case len(sources) == 0:
			ve = ve.Also(apis.ErrMissingOneOf(allowedSourceNames(allowed)...))
		case len(sources) > 1:
			ve = ve.Also(apis.ErrMultipleOneOf(sources...))
		}
		if bad := volumeSourceKeys(v, allowed); len(bad) > 0 {
			ve = ve.Also(apis.ErrDisallowedFields(bad...))
		}
		if v.PersistentVolumeClaim != nil && f.PodSpecPersistentVolumeClaim && !f.PodSpecPersistentVolumeWrite && !v.PersistentVolumeClaim.ReadOnly {
			ve = ve.Also(apis.ErrInvalidValue(false, "readOnly",
				"must be true while config-features kubernetes.podspec-persistent-volume-write is disabled").ViaField("persistentVolumeClaim"))
		}
		if v.Projected != nil {
			for j, s := range v.Projected.Sources {
				if s.ClusterTrustBundle != nil || s.PodCertificate != nil {
					ve = ve.Also(apis.ErrDisallowedFields("clusterTrustBundle", "podCertificate").ViaFieldIndex("sources", j).ViaField("projected"))
				}
			}
		}
		errs = errs.Also(ve.ViaFieldIndex("volumes", i))
	}
	return byName, errs
}

func allowedSourceNames(allowed map[string]bool) []string {
	var out []string
	for k := range allowed {
		if k != "name" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func validateContainer(c *corev1.Container, serving bool, volumes map[string]corev1.Volume, mounted map[string]bool) *apis.FieldError {
	errs := validateContainerCommon(c, volumes, mounted)
	if serving {
		errs = errs.Also(validateEnv(c.Env, true))
		port := userPort(c)
		errs = errs.Also(validateProbe(c.ReadinessProbe, port).ViaField("readinessProbe"))
		errs = errs.Also(validateProbe(c.LivenessProbe, port).ViaField("livenessProbe"))
		errs = errs.Also(validateProbe(c.StartupProbe, port).ViaField("startupProbe"))
	} else {
		errs = errs.Also(validateEnv(c.Env, false))
		errs = errs.Also(validateProbe(c.ReadinessProbe, 0).ViaField("readinessProbe"))
		errs = errs.Also(validateProbe(c.LivenessProbe, 0).ViaField("livenessProbe"))
		errs = errs.Also(validateProbe(c.StartupProbe, 0).ViaField("startupProbe"))
	}
	for i := range c.Ports {
		errs = errs.Also(validatePort(&c.Ports[i]).ViaFieldIndex("ports", i))
	}
	return errs
}

func validateInitContainer(c *corev1.Container, volumes map[string]corev1.Volume, mounted map[string]bool) *apis.FieldError {
	errs := validateContainerCommon(c, volumes, mounted)
	errs = errs.Also(validateEnv(c.Env, false))
	var set []string
	if len(c.Ports) > 0 {
		set = append(set, "ports")
	}
	if c.ReadinessProbe != nil {
		set = append(set, "readinessProbe")
	}
	if c.LivenessProbe != nil {
		set = append(set, "livenessProbe")
	}
	if c.StartupProbe != nil {
		set = append(set, "startupProbe")
	}
	if len(set) > 0 {
		errs = errs.Also(apis.ErrDisallowedFields(set...))
	}
	return errs
}

func validateContainerCommon(c *corev1.Container, volumes map[string]corev1.Volume, mounted map[string]bool) *apis.FieldError {
	var errs *apis.FieldError
	if keys := disallowedKeys(c, containerAllowed); len(keys) > 0 {
		errs = errs.Also(apis.ErrDisallowedFields(keys...))
	}
	if strings.TrimSpace(c.Image) == "" {
		errs = errs.Also(apis.ErrMissingField("image"))
	} else if strings.ContainsAny(c.Image, " \t\r\n") {
		errs = errs.Also(apis.ErrInvalidValue(c.Image, "image", "must not contain whitespace"))
	}
	for i := range c.EnvFrom {
		errs = errs.Also(validateEnvFrom(&c.EnvFrom[i]).ViaFieldIndex("envFrom", i))
	}
	errs = errs.Also(validateVolumeMounts(c.VolumeMounts, volumes, mounted))
	errs = errs.Also(validateSecurityContext(c.SecurityContext).ViaField("securityContext"))
	return errs
}

func validateEnv(env []corev1.EnvVar, serving bool) *apis.FieldError {
	var errs *apis.FieldError
	for i, e := range env {
		var ee *apis.FieldError
		switch {
		case e.Name == "":
			ee = ee.Also(apis.ErrMissingField("name"))
		case ReservedEnvVars[e.Name] || (serving && e.Name == "PORT"):
			ee = ee.Also(apis.ErrInvalidValue(e.Name, "name", "the name is reserved"))
		default:
			if msgs := validation.IsEnvVarName(e.Name); len(msgs) > 0 {
				ee = ee.Also(apis.ErrInvalidValue(e.Name, "name", strings.Join(msgs, "; ")))
			}
		}
		if e.Value != "" && e.ValueFrom != nil {
			ee = ee.Also(apis.ErrMultipleOneOf("value", "valueFrom"))
		}
		if vf := e.ValueFrom; vf != nil {
			n := 0
			for _, set := range []bool{vf.ConfigMapKeyRef != nil, vf.SecretKeyRef != nil, vf.FieldRef != nil, vf.ResourceFieldRef != nil, vf.FileKeyRef != nil} {
				if set {
					n++
				}
			}
			switch {
			case n == 0:
				ee = ee.Also(apis.ErrMissingOneOf("configMapKeyRef", "secretKeyRef", "fieldRef", "resourceFieldRef").ViaField("valueFrom"))
			case n > 1:
				ee = ee.Also(apis.ErrGeneric("expected exactly one source", "valueFrom"))
			}
			if vf.FileKeyRef != nil {
				ee = ee.Also(apis.ErrDisallowedFields("fileKeyRef").ViaField("valueFrom"))
			}
		}
		errs = errs.Also(ee.ViaFieldIndex("env", i))
	}
	return errs
}

func validateEnvFrom(e *corev1.EnvFromSource) *apis.FieldError {
	switch {
	case e.ConfigMapRef != nil && e.SecretRef != nil:
		return apis.ErrMultipleOneOf("configMapRef", "secretRef")
	case e.ConfigMapRef == nil && e.SecretRef == nil:
		return apis.ErrMissingOneOf("configMapRef", "secretRef")
	}
	return nil
}

func validateVolumeMounts(ms []corev1.VolumeMount, volumes map[string]corev1.Volume, mounted map[string]bool) *apis.FieldError {
	var errs *apis.FieldError
	paths := map[string]int{}
	for i, m := range ms {
		var me *apis.FieldError
		if _, ok := volumes[m.Name]; !ok {
			me = me.Also(apis.ErrInvalidValue(m.Name, "name", "no volume of that name"))
		} else {
			mounted[m.Name] = true
		}
		switch {
		case m.MountPath == "":
			me = me.Also(apis.ErrMissingField("mountPath"))
		case !path.IsAbs(m.MountPath):
			me = me.Also(apis.ErrInvalidValue(m.MountPath, "mountPath", "must be an absolute path"))
		case ReservedPaths[path.Clean(m.MountPath)]:
			me = me.Also(apis.ErrInvalidValue(m.MountPath, "mountPath", "the path is reserved"))
		default:
			clean := path.Clean(m.MountPath)
			if j, dup := paths[clean]; dup {
				me = me.Also(apis.ErrGeneric(fmt.Sprintf("mount path %q is used by volumeMounts[%d] too", m.MountPath, j), "mountPath"))
			} else {
				paths[clean] = i
			}
		}
		if m.MountPropagation != nil {
			me = me.Also(apis.ErrDisallowedFields("mountPropagation"))
		}
		errs = errs.Also(me.ViaFieldIndex("volumeMounts", i))
	}
	return errs
}

func validatePort(p *corev1.ContainerPort) *apis.FieldError {
	var errs *apis.FieldError
	var bad []string
	if p.HostIP != "" {
		bad = append(bad, "hostIP")
	}
	if p.HostPort != 0 {
		bad = append(bad, "hostPort")
	}
	if len(bad) > 0 {
		errs = errs.Also(apis.ErrDisallowedFields(bad...))
	}
	switch {
	case p.ContainerPort < 1 || p.ContainerPort > 65535:
		errs = errs.Also(apis.ErrOutOfBoundsValue(p.ContainerPort, 1, 65535, "containerPort"))
	case contract.ReservedPorts[p.ContainerPort]:
		errs = errs.Also(apis.ErrInvalidValue(p.ContainerPort, "containerPort", "the port is reserved"))
	}
	switch p.Name {
	case "", "h2c", "http1":
	default:
		errs = errs.Also(apis.ErrInvalidValue(p.Name, "name", `must be "h2c", "http1" or empty`))
	}
	if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
		errs = errs.Also(apis.ErrInvalidValue(p.Protocol, "protocol", "must be TCP"))
	}
	return errs
}

// validateProbe checks a probe; port, when non-zero, is the only port the
// probe may name.
func validateProbe(p *corev1.Probe, port int32) *apis.FieldError {
	if p == nil {
		return nil
	}
	var errs *apis.FieldError
	var handlers []string
	h := p.ProbeHandler
	if h.Exec != nil {
		handlers = append(handlers, "exec")
	}
	if h.HTTPGet != nil {
		handlers = append(handlers, "httpGet")
		errs = errs.Also(validateProbePort(h.HTTPGet.Port.IntValue(), h.HTTPGet.Port.String(), port, "httpGet.port"))
	}
	if h.TCPSocket != nil {
		handlers = append(handlers, "tcpSocket")
		errs = errs.Also(validateProbePort(h.TCPSocket.Port.IntValue(), h.TCPSocket.Port.String(), port, "tcpSocket.port"))
	}
	if h.GRPC != nil {
		handlers = append(handlers, "grpc")
		errs = errs.Also(validateProbePort(int(h.GRPC.Port), fmt.Sprint(h.GRPC.Port), port, "grpc.port"))
	}
	switch {
	case len(handlers) == 0:
		errs = errs.Also(apis.ErrMissingOneOf("exec", "grpc", "httpGet", "tcpSocket"))
	case len(handlers) > 1:
		errs = errs.Also(apis.ErrMultipleOneOf(handlers...))
	}
	for _, f := range []struct {
		name string
		v    int32
	}{
		{"initialDelaySeconds", p.InitialDelaySeconds},
		{"timeoutSeconds", p.TimeoutSeconds},
		{"periodSeconds", p.PeriodSeconds},
		{"successThreshold", p.SuccessThreshold},
		{"failureThreshold", p.FailureThreshold},
	} {
		if f.v < 0 {
			errs = errs.Also(apis.ErrInvalidValue(f.v, f.name, "must not be negative"))
		}
	}
	if p.TerminationGracePeriodSeconds != nil {
		errs = errs.Also(apis.ErrDisallowedFields("terminationGracePeriodSeconds"))
	}
	return errs
}

func validateProbePort(n int, text string, want int32, field string) *apis.FieldError {
	if want == 0 || n == 0 && (text == "" || text == "0") {
		return nil
	}
	if n != int(want) {
		return apis.ErrInvalidValue(text, field, fmt.Sprintf("may only probe the container port %d", want))
	}
	return nil
}

func validateSecurityContext(sc *corev1.SecurityContext) *apis.FieldError {
	if sc == nil {
		return nil
	}
	var errs *apis.FieldError
	allowed := securityContextAllowed
	if sc.Privileged != nil && !*sc.Privileged {
		allowed = setOf(append(keys(securityContextAllowed), "privileged")...)
	}
	if bad := disallowedKeys(sc, allowed); len(bad) > 0 {
		errs = errs.Also(apis.ErrDisallowedFields(bad...))
	}
	if caps := sc.Capabilities; caps != nil {
		for i, c := range caps.Add {
			if c != "NET_BIND_SERVICE" {
				errs = errs.Also(apis.ErrInvalidValue(c, apis.CurrentField, "only NET_BIND_SERVICE may be added").
					ViaIndex(i).ViaField("capabilities", "add"))
			}
		}
	}
	if sc.RunAsUser != nil && *sc.RunAsUser < 0 {
		errs = errs.Also(apis.ErrInvalidValue(*sc.RunAsUser, "runAsUser", "must not be negative"))
	}
	if sc.RunAsGroup != nil && *sc.RunAsGroup < 0 {
		errs = errs.Also(apis.ErrInvalidValue(*sc.RunAsGroup, "runAsGroup", "must not be negative"))
	}
	return errs
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
