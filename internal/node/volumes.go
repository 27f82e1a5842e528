package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/storage"
)

// volumeDirs prepares every volume of pod under dir/<volume name> and returns the host
// directory of each: emptyDir (empty), configMap, secret, downwardAPI and projected volumes
// (files written at start, and again on every start of the node, by writeVolume), and
// persistentVolumeClaim volumes, the shared directories under shared that their bound
// PersistentVolumes name (claimDir). Other kinds are refused with the field named. emptyDirs
// live in the sandbox, where they count towards its ephemeral storage.
func volumeDirs(ctx context.Context, c kubernetes.Interface, pod *corev1.Pod, dir, shared string, src Sources, emptyDir func(name string) (string, error)) (map[string]string, error) {
	out := map[string]string{}
	for i, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			vdir, err := claimDir(ctx, c, pod.Namespace, v.PersistentVolumeClaim, shared)
			if err != nil {
				return nil, fmt.Errorf("spec.volumes[%d] (%s): %w", i, v.Name, err)
			}
			out[v.Name] = vdir
			continue
		}
		if v.EmptyDir != nil {
			vdir, err := emptyDir(v.Name)
			if err != nil {
				return nil, fmt.Errorf("spec.volumes[%d] (%s): %w", i, v.Name, err)
			}
			out[v.Name] = vdir
			continue
		}
		files := payload{}
		var err error
		switch {
		case v.ConfigMap != nil:
			err = files.configMap(v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.DefaultMode, ptr.Deref(v.ConfigMap.Optional, false), src)
		case v.Secret != nil:
			err = files.secret(v.Secret.SecretName, v.Secret.Items, v.Secret.DefaultMode, ptr.Deref(v.Secret.Optional, false), src)
		case v.DownwardAPI != nil:
			err = files.downward(pod, v.DownwardAPI.Items, v.DownwardAPI.DefaultMode)
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				switch {
				case s.ConfigMap != nil:
					err = files.configMap(s.ConfigMap.Name, s.ConfigMap.Items, v.Projected.DefaultMode, ptr.Deref(s.ConfigMap.Optional, false), src)
				case s.Secret != nil:
					err = files.secret(s.Secret.Name, s.Secret.Items, v.Projected.DefaultMode, ptr.Deref(s.Secret.Optional, false), src)
				case s.DownwardAPI != nil:
					err = files.downward(pod, s.DownwardAPI.Items, v.Projected.DefaultMode)
				case s.ServiceAccountToken != nil:
					err = files.token(ctx, c, pod, s.ServiceAccountToken, v.Projected.DefaultMode)
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
		vdir := filepath.Join(dir, v.Name)
		if err := writeVolume(vdir, files, time.Now()); err != nil {
			return nil, fmt.Errorf("spec.volumes[%d] (%s): %w", i, v.Name, err)
		}
		out[v.Name] = vdir
	}
	return out, nil
}

func mode(m *int32) os.FileMode {
	if m == nil {
		return 0o644
	}
	return os.FileMode(*m) & os.ModePerm
}

// volumeFile is one file of a volume the node writes.
type volumeFile struct {
	data []byte
	mode os.FileMode
}

// payload is the content of a volume the node writes, by path relative to the volume.
type payload map[string]volumeFile

func (p payload) add(rel string, data []byte, m os.FileMode) error {
	clean, err := payloadPath(rel)
	if err != nil {
		return err
	}
	p[clean] = volumeFile{data: data, mode: m}
	return nil
}

// payloadPath checks a file's path in a volume: relative, with no ".." component, and not
// starting with "..", which the writer keeps for itself (..data and the versions).
func payloadPath(rel string) (string, error) {
	if rel == "" || path.IsAbs(rel) || strings.ContainsRune(rel, 0) {
		return "", fmt.Errorf("path %q: must be a relative path", rel)
	}
	for _, part := range strings.Split(rel, "/") {
		if part == ".." {
			return "", fmt.Errorf("path %q: must not contain \"..\"", rel)
		}
	}
	clean := path.Clean(rel)
	if clean == "." || strings.HasPrefix(clean, "..") {
		return "", fmt.Errorf("path %q: must not be empty or start with \"..\"", rel)
	}
	return clean, nil
}

func (p payload) items(data map[string][]byte, items []corev1.KeyToPath, m *int32) error {
	if len(items) == 0 {
		for k, v := range data {
			if err := p.add(k, v, mode(m)); err != nil {
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
		if err := p.add(it.Path, v, mode(fm)); err != nil {
			return err
		}
	}
	return nil
}

func (p payload) configMap(name string, items []corev1.KeyToPath, m *int32, optional bool, src Sources) error {
	data, err := src.ConfigMap(name)
	bytes := make(map[string][]byte, len(data))
	for k, v := range data {
		bytes[k] = []byte(v)
	}
	return p.source("configMap", name, bytes, err, items, m, optional)
}

func (p payload) secret(name string, items []corev1.KeyToPath, m *int32, optional bool, src Sources) error {
	data, err := src.Secret(name)
	return p.source("secret", name, data, err, items, m, optional)
}

// source adds a configMap's or secret's keys, or reports why it could not be read; an
// optional source that is missing adds nothing.
func (p payload) source(kind, name string, data map[string][]byte, readErr error, items []corev1.KeyToPath, m *int32, optional bool) error {
	if readErr != nil {
		if optional {
			return nil
		}
		return fmt.Errorf("%s %q: %w", kind, name, readErr)
	}
	return p.items(data, items, m)
}

func (p payload) downward(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, m *int32) error {
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
		if err := p.add(it.Path, []byte(v), mode(fm)); err != nil {
			return err
		}
	}
	return nil
}

// dataLink is the link that names a volume's current version; versionPrefix starts every
// version's directory, as the kubelet names them.
const (
	dataLink      = "..data"
	dataLinkNew   = "..data_tmp"
	versionPrefix = ".."
)

// writeVolume writes files into dir as the kubelet's atomic writer does, so a container sees
// either the old or the new content, never half of each, and nothing the container did can
// send the node's writes elsewhere:
//
//	dir/..2026_11_28_10_00_00.000000001/<files>  a new version, made fresh each time
//	dir/..data -> ..2026_11_28_10_00_00.000000001  swapped by rename(2), atomically
//	dir/<first component> -> ..data/<first component>
//
// Every operation goes through os.Root(dir): a symbolic link in dir (one a container planted
// while the volume was still mounted writable, by an older node) is replaced, never followed
// out of dir. Versions and names no longer in files are removed once ..data has moved on.
// Containers mount the volume read-only (volumeMounts), so they cannot change it.
func writeVolume(dir string, files payload, now time.Time) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	version, err := newVersionDir(root, now)
	if err != nil {
		return err
	}
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		f := files[rel]
		name := path.Join(version, rel)
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			return fmt.Errorf("writing %s: %w", rel, err)
		}
		if err := root.WriteFile(name, f.data, f.mode); err != nil {
			return fmt.Errorf("writing %s: %w", rel, err)
		}
		// WriteFile's mode passes through the umask; the pod asked for this one.
		if err := root.Chmod(name, f.mode); err != nil {
			return fmt.Errorf("writing %s: %w", rel, err)
		}
	}
	if err := root.RemoveAll(dataLinkNew); err != nil {
		return err
	}
	if err := root.Symlink(version, dataLinkNew); err != nil {
		return err
	}
	if fi, err := root.Lstat(dataLink); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		// Not a link (an older layout, or planted): rename cannot replace a directory.
		if err := root.RemoveAll(dataLink); err != nil {
			return err
		}
	}
	if err := root.Rename(dataLinkNew, dataLink); err != nil {
		return fmt.Errorf("switching %s to %s: %w", dataLink, version, err)
	}
	visible := map[string]bool{}
	for rel := range files {
		top, _, _ := strings.Cut(rel, "/")
		visible[top] = true
	}
	for top := range visible {
		want := path.Join(dataLink, top)
		if got, err := root.Readlink(top); err == nil && got == want {
			continue
		}
		if err := root.RemoveAll(top); err != nil {
			return err
		}
		if err := root.Symlink(want, top); err != nil {
			return err
		}
	}
	entries, err := fs.ReadDir(root.FS(), ".")
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if name == dataLink || name == version || visible[name] {
			continue
		}
		if err := root.RemoveAll(name); err != nil {
			return err
		}
	}
	return nil
}

// newVersionDir makes a version directory named after now that did not exist before.
func newVersionDir(root *os.Root, now time.Time) (string, error) {
	base := versionPrefix + now.UTC().Format("2006_01_02_15_04_05.000000000")
	for i := 0; ; i++ {
		name := base
		if i > 0 {
			name = fmt.Sprintf("%s_%d", base, i)
		}
		err := root.Mkdir(name, 0o755)
		if err == nil {
			return name, nil
		}
		if !errors.Is(err, fs.ErrExist) || i >= 100 {
			return "", err
		}
	}
}

func formatMap(m map[string]string) string {
	var b strings.Builder
	for k, v := range m {
		fmt.Fprintf(&b, "%s=%q\n", k, v)
	}
	return b.String()
}

// token requests a service-account token bound to the pod, as the kubelet does.
func (p payload) token(ctx context.Context, c kubernetes.Interface, pod *corev1.Pod, s *corev1.ServiceAccountTokenProjection, m *int32) error {
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
	return p.add(s.Path, []byte(tok.Status.Token), mode(m))
}

// ErrClaimNotBound is the failure to mount a claim that no PersistentVolume is bound to yet:
// the pod waits (ContainerCreating) and the node tries again.
var ErrClaimNotBound = errors.New("is not bound to a PersistentVolume yet; the pod starts once it is")

// claimDir resolves a persistentVolumeClaim volume as the kubelet does, claim → bound
// PersistentVolume → its source, and serves only the sources of Gantry's shared storage:
// a CSI source of storage.DriverName, whose volume handle is a plain name resolved under
// shared (storage.Resolve). Nothing the API holds is taken as a host path. A claim that is
// not bound yet is ErrClaimNotBound; a volume of any other kind is refused, saying which.
// A volume only readable (ReadOnlyMany alone, or csi.readOnly) is served only to a pod that
// mounts it readOnly, so its read-only promise holds.
func claimDir(ctx context.Context, c kubernetes.Interface, ns string, v *corev1.PersistentVolumeClaimVolumeSource, shared string) (string, error) {
	pvc, err := c.CoreV1().PersistentVolumeClaims(ns).Get(ctx, v.ClaimName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("persistentVolumeClaim %q: %w", v.ClaimName, err)
	}
	if pvc.DeletionTimestamp != nil {
		return "", fmt.Errorf("persistentVolumeClaim %q is being deleted", v.ClaimName)
	}
	if pvc.Spec.VolumeName == "" || pvc.Status.Phase != corev1.ClaimBound {
		return "", fmt.Errorf("persistentVolumeClaim %q (phase %s) %w", v.ClaimName, pvc.Status.Phase, ErrClaimNotBound)
	}
	pv, err := c.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("persistentVolumeClaim %q: PersistentVolume %q: %w", v.ClaimName, pvc.Spec.VolumeName, err)
	}
	return servedDir(pvc, pv, v.ReadOnly, shared)
}

// servedDir is the directory of pv, bound to pvc, for a pod that mounts it readOnly or not;
// or the reason this node does not serve it.
func servedDir(pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume, readOnly bool, shared string) (string, error) {
	where := fmt.Sprintf("persistentVolumeClaim %q: PersistentVolume %q", pvc.Name, pv.Name)
	if ref := pv.Spec.ClaimRef; ref == nil || ref.UID != pvc.UID || ref.Namespace != pvc.Namespace || ref.Name != pvc.Name {
		return "", fmt.Errorf("%s is not bound to this claim", where)
	}
	csi := pv.Spec.CSI
	if csi == nil || csi.Driver != storage.DriverName {
		return "", fmt.Errorf("%s: not served by this node: it serves PersistentVolumes of the CSI driver %s (StorageClass %s) only, not %s", where, storage.DriverName, storage.ClassName, pvSource(pv))
	}
	onlyRead := csi.ReadOnly || (len(pv.Spec.AccessModes) > 0 && !slices.ContainsFunc(pv.Spec.AccessModes, func(m corev1.PersistentVolumeAccessMode) bool { return m != corev1.ReadOnlyMany }))
	if onlyRead && !readOnly {
		return "", fmt.Errorf("%s is read-only (ReadOnlyMany or csi.readOnly): set readOnly: true on the volume's persistentVolumeClaim", where)
	}
	if shared == "" {
		return "", fmt.Errorf("%s: this node has no shared volumes directory", where)
	}
	dir, err := storage.Resolve(shared, csi.VolumeHandle)
	if err != nil {
		return "", fmt.Errorf("%s: %w", where, err)
	}
	return dir, nil
}

// pvSource names the kind of a PersistentVolume's source, as its field is spelt.
func pvSource(pv *corev1.PersistentVolume) string {
	s := pv.Spec.PersistentVolumeSource
	switch {
	case s.CSI != nil:
		return "CSI driver " + s.CSI.Driver
	case s.HostPath != nil:
		return "hostPath"
	case s.Local != nil:
		return "local"
	case s.NFS != nil:
		return "nfs"
	}
	return "its source"
}

// readOnlyClaim reports whether the pod's volume called name is a persistentVolumeClaim the
// pod mounts readOnly: every container's mount of it is then read-only.
func readOnlyClaim(pod *corev1.Pod, name string) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Name == name {
			return v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ReadOnly
		}
	}
	return false
}
