package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/atomicfile"
)

// volumeDirs prepares every volume of pod under dir/<volume name> and returns the host
// directory of each: emptyDir (empty), configMap, secret, downwardAPI and projected volumes
// (files written once, at start). Other kinds are refused with the field named.
// emptyDirs live in the sandbox, where they count towards its ephemeral storage.
func volumeDirs(ctx context.Context, c kubernetes.Interface, pod *corev1.Pod, dir string, src Sources, emptyDir func(name string) (string, error)) (map[string]string, error) {
	out := map[string]string{}
	for i, v := range pod.Spec.Volumes {
		if v.EmptyDir != nil {
			vdir, err := emptyDir(v.Name)
			if err != nil {
				return nil, fmt.Errorf("spec.volumes[%d] (%s): %w", i, v.Name, err)
			}
			out[v.Name] = vdir
			continue
		}
		vdir := filepath.Join(dir, v.Name)
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			return nil, err
		}
		out[v.Name] = vdir
		var err error
		switch {
		case v.ConfigMap != nil:
			err = writeConfigMap(vdir, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.DefaultMode, ptr.Deref(v.ConfigMap.Optional, false), src)
		case v.Secret != nil:
			err = writeSecret(vdir, v.Secret.SecretName, v.Secret.Items, v.Secret.DefaultMode, ptr.Deref(v.Secret.Optional, false), src)
		case v.DownwardAPI != nil:
			err = writeDownward(vdir, pod, v.DownwardAPI.Items, v.DownwardAPI.DefaultMode)
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				switch {
				case s.ConfigMap != nil:
					err = writeConfigMap(vdir, s.ConfigMap.Name, s.ConfigMap.Items, v.Projected.DefaultMode, ptr.Deref(s.ConfigMap.Optional, false), src)
				case s.Secret != nil:
					err = writeSecret(vdir, s.Secret.Name, s.Secret.Items, v.Projected.DefaultMode, ptr.Deref(s.Secret.Optional, false), src)
				case s.DownwardAPI != nil:
					err = writeDownward(vdir, pod, s.DownwardAPI.Items, v.Projected.DefaultMode)
				case s.ServiceAccountToken != nil:
					err = writeToken(ctx, c, pod, vdir, s.ServiceAccountToken, v.Projected.DefaultMode)
				}
				if err != nil {
					break
				}
			}
		default:
			return nil, fmt.Errorf("spec.volumes[%d] (%s): this volume type is not supported on a serverless node", i, v.Name)
		}
		if err != nil {
			return nil, fmt.Errorf("spec.volumes[%d] (%s): %w", i, v.Name, err)
		}
	}
	return out, nil
}

func mode(m *int32) os.FileMode {
	if m == nil {
		return 0o644
	}
	return os.FileMode(*m)
}

func writeFile(dir, rel string, data []byte, m os.FileMode) error {
	path := filepath.Join(dir, filepath.Clean("/"+rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, data, m)
}

func writeItems(dir string, data map[string][]byte, items []corev1.KeyToPath, m *int32) error {
	if len(items) == 0 {
		for k, v := range data {
			if err := writeFile(dir, k, v, mode(m)); err != nil {
				return err
			}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			return fmt.Errorf("key %q not found", it.Key)
		}
		fm := m
		if it.Mode != nil {
			fm = it.Mode
		}
		if err := writeFile(dir, it.Path, v, mode(fm)); err != nil {
			return err
		}
	}
	return nil
}

func writeConfigMap(dir, name string, items []corev1.KeyToPath, m *int32, optional bool, src Sources) error {
	data, err := src.ConfigMap(name)
	bytes := make(map[string][]byte, len(data))
	for k, v := range data {
		bytes[k] = []byte(v)
	}
	return writeSource(dir, "configMap", name, bytes, err, items, m, optional)
}

func writeSecret(dir, name string, items []corev1.KeyToPath, m *int32, optional bool, src Sources) error {
	data, err := src.Secret(name)
	return writeSource(dir, "secret", name, data, err, items, m, optional)
}

// writeSource writes a configMap's or secret's keys, or reports why it could not be read;
// an optional source that is missing writes nothing.
func writeSource(dir, kind, name string, data map[string][]byte, readErr error, items []corev1.KeyToPath, m *int32, optional bool) error {
	if readErr != nil {
		if optional {
			return nil
		}
		return fmt.Errorf("%s %q: %w", kind, name, readErr)
	}
	return writeItems(dir, data, items, m)
}

func writeDownward(dir string, pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, m *int32) error {
	for _, it := range items {
		if it.FieldRef == nil {
			continue
		}
		var v string
		switch it.FieldRef.FieldPath {
		case "metadata.labels":
			v = formatMap(pod.Labels)
		case "metadata.annotations":
			v = formatMap(pod.Annotations)
		default:
			var err error
			if v, err = podField(pod, it.FieldRef.FieldPath); err != nil {
				return err
			}
		}
		fm := m
		if it.Mode != nil {
			fm = it.Mode
		}
		if err := writeFile(dir, it.Path, []byte(v), mode(fm)); err != nil {
			return err
		}
	}
	return nil
}

func formatMap(m map[string]string) string {
	var b strings.Builder
	for k, v := range m {
		fmt.Fprintf(&b, "%s=%q\n", k, v)
	}
	return b.String()
}

// writeToken requests a service-account token bound to the pod, as the kubelet does.
func writeToken(ctx context.Context, c kubernetes.Interface, pod *corev1.Pod, dir string, s *corev1.ServiceAccountTokenProjection, m *int32) error {
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: s.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if s.Audience != "" {
		req.Spec.Audiences = []string{s.Audience}
	}
	tok, err := c.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("requesting a token for service account %q: %w", sa, err)
	}
	return writeFile(dir, s.Path, []byte(tok.Status.Token), mode(m))
}
