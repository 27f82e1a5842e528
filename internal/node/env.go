package node

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Sources looks up what a container's environment refers to, in the pod's namespace.
type Sources interface {
	ConfigMap(name string) (map[string]string, error)
	Secret(name string) (map[string][]byte, error)
}

// apiServerSource is the Sources that knows the API server's Service.
type apiServerSource interface {
	APIServer() (ip string, port int32, ok bool)
}

// Env builds a container's environment as the kubelet does: the image's variables, the API
// server's Service (KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT and the Docker-link
// style KUBERNETES_PORT*, which in-cluster clients read), then envFrom, then env (later entries win), with $(VAR) references to earlier variables
// expanded. A missing source that is not optional is an error naming it.
func Env(pod *corev1.Pod, c *corev1.Container, imageEnv []string, src Sources) ([]string, error) {
	order := []string{}
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, kv := range imageEnv {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	if as, ok := src.(apiServerSource); ok {
		if ip, port, ok := as.APIServer(); ok {
			p := strconv.Itoa(int(port))
			addr := "tcp://" + net.JoinHostPort(ip, p)
			set("KUBERNETES_SERVICE_HOST", ip)
			set("KUBERNETES_SERVICE_PORT", p)
			set("KUBERNETES_SERVICE_PORT_HTTPS", p)
			set("KUBERNETES_PORT", addr)
			set("KUBERNETES_PORT_"+p+"_TCP", addr)
			set("KUBERNETES_PORT_"+p+"_TCP_PROTO", "tcp")
			set("KUBERNETES_PORT_"+p+"_TCP_PORT", p)
			set("KUBERNETES_PORT_"+p+"_TCP_ADDR", ip)
		}
	}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			data, err := src.ConfigMap(ef.ConfigMapRef.Name)
			if err != nil {
				if ef.ConfigMapRef.Optional != nil && *ef.ConfigMapRef.Optional {
					continue
				}
				return nil, fmt.Errorf("envFrom configMap %q: %w", ef.ConfigMapRef.Name, err)
			}
			for _, k := range slices.Sorted(maps.Keys(data)) {
				set(ef.Prefix+k, data[k])
			}
		case ef.SecretRef != nil:
			data, err := src.Secret(ef.SecretRef.Name)
			if err != nil {
				if ef.SecretRef.Optional != nil && *ef.SecretRef.Optional {
					continue
				}
				return nil, fmt.Errorf("envFrom secret %q: %w", ef.SecretRef.Name, err)
			}
			for _, k := range slices.Sorted(maps.Keys(data)) {
				set(ef.Prefix+k, string(data[k]))
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, Expand(e.Value, vals))
			continue
		}
		v, ok, err := valueFrom(pod, c, e.ValueFrom, src)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	return out, nil
}

func valueFrom(pod *corev1.Pod, c *corev1.Container, vf *corev1.EnvVarSource, src Sources) (string, bool, error) {
	switch {
	case vf.ConfigMapKeyRef != nil:
		ref := vf.ConfigMapKeyRef
		data, err := src.ConfigMap(ref.Name)
		if err == nil {
			if v, ok := data[ref.Key]; ok {
				return v, true, nil
			}
			err = fmt.Errorf("configMap %q has no key %q", ref.Name, ref.Key)
		}
		if ref.Optional != nil && *ref.Optional {
			return "", false, nil
		}
		return "", false, err
	case vf.SecretKeyRef != nil:
		ref := vf.SecretKeyRef
		data, err := src.Secret(ref.Name)
		if err == nil {
			if v, ok := data[ref.Key]; ok {
				return string(v), true, nil
			}
			err = fmt.Errorf("secret %q has no key %q", ref.Name, ref.Key)
		}
		if ref.Optional != nil && *ref.Optional {
			return "", false, nil
		}
		return "", false, err
	case vf.FieldRef != nil:
		v, err := podField(pod, vf.FieldRef.FieldPath)
		return v, err == nil, err
	case vf.ResourceFieldRef != nil:
		v, err := resourceField(c, vf.ResourceFieldRef)
		return v, err == nil, err
	}
	return "", false, nil
}

// podField is the downward API's value of a pod field.
func podField(pod *corev1.Pod, path string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		return pod.Status.PodIP, nil
	case "status.hostIP":
		return pod.Status.HostIP, nil
	}
	if k, ok := strings.CutPrefix(path, "metadata.labels['"); ok {
		return pod.Labels[strings.TrimSuffix(k, "']")], nil
	}
	if k, ok := strings.CutPrefix(path, "metadata.annotations['"); ok {
		return pod.Annotations[strings.TrimSuffix(k, "']")], nil
	}
	return "", fmt.Errorf("fieldRef %q is not supported", path)
}

func resourceField(c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	var q resource.Quantity
	switch ref.Resource {
	case "limits.cpu":
		q = c.Resources.Limits[corev1.ResourceCPU]
	case "limits.memory":
		q = c.Resources.Limits[corev1.ResourceMemory]
	case "requests.cpu":
		q = c.Resources.Requests[corev1.ResourceCPU]
	case "requests.memory":
		q = c.Resources.Requests[corev1.ResourceMemory]
	default:
		return "", fmt.Errorf("resourceFieldRef %q is not supported", ref.Resource)
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if strings.HasSuffix(ref.Resource, "cpu") {
		// CPU rounds up to whole divisor units, as the kubelet does.
		return strconv.FormatInt((q.MilliValue()+divisor.MilliValue()-1)/divisor.MilliValue(), 10), nil
	}
	return strconv.FormatInt((q.Value()+divisor.Value()-1)/divisor.Value(), 10), nil
}

// Expand replaces $(VAR) with vars[VAR]; $$ escapes a dollar, and a reference to an unknown
// variable, or one never closed, is kept as written, as Kubernetes does.
func Expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				// Never closed: "$(" stays as written and the scan goes on after it, so a
				// later "$$" is still an escape, as in Kubernetes.
				b.WriteString("$(")
				i++
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// Argv is the process a container runs, as Kubernetes resolves it: command replaces the
// image's entrypoint (and drops its cmd), args replace the cmd; $(VAR) references expand
// against the container's environment.
func Argv(c *corev1.Container, entrypoint, cmd, env []string) []string {
	vars := envMap(env)
	var argv []string
	switch {
	case len(c.Command) > 0:
		argv = append(expandAll(c.Command, vars), expandAll(c.Args, vars)...)
	case len(c.Args) > 0:
		argv = append(append([]string{}, entrypoint...), expandAll(c.Args, vars)...)
	default:
		argv = append(append([]string{}, entrypoint...), cmd...)
	}
	return argv
}

// envMap is an environment of KEY=VALUE entries by key; a later entry wins.
func envMap(env []string) map[string]string {
	vars := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	return vars
}

func expandAll(in []string, vars map[string]string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = Expand(s, vars)
	}
	return out
}
