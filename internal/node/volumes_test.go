package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	"github.com/gantry-run/gantry/internal/storage"
)

// mapSources serves one ConfigMap, "settings", whose data the test changes.
type mapSources struct{ data map[string]string }

func (s *mapSources) ConfigMap(name string) (map[string]string, error) {
	if name == "settings" {
		return s.data, nil
	}
	return nil, errors.New("not found")
}

func (s *mapSources) Secret(string) (map[string][]byte, error) { return nil, errors.New("not found") }

// configMapPod has a configMap volume "cfg" with the keys color (as color) and size (as
// nested/size), in mode 0400.
func configMapPod() *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}, Spec: corev1.PodSpec{Volumes: []corev1.Volume{{
		Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "settings"},
			Items:                []corev1.KeyToPath{{Key: "color", Path: "color"}, {Key: "size", Path: "nested/size"}},
			DefaultMode:          ptr.To[int32](0o400),
		}},
	}}}}
}

func noEmptyDir(string) (string, error) { return "", errors.New("no emptyDir here") }

// listTree lists every path under dir with its content (or link target), for comparisons.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+" -> "+target)
		case d.Type().IsRegular():
			b, _ := os.ReadFile(p)
			out = append(out, rel+": "+string(b))
		default:
			out = append(out, rel+"/")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestConfigMapVolumeIsWrittenAtomically(t *testing.T) {
	dir := t.TempDir()
	src := &mapSources{data: map[string]string{"color": "blue", "size": "L"}}
	vols, err := volumeDirs(context.Background(), nil, configMapPod(), dir, "", src, noEmptyDir)
	if err != nil {
		t.Fatal(err)
	}
	vdir := vols["cfg"]
	read := func(rel string) string {
		b, err := os.ReadFile(filepath.Join(vdir, rel))
		if err != nil {
			return "error: " + err.Error()
		}
		return string(b)
	}
	if read("color") != "blue" || read("nested/size") != "L" {
		t.Fatalf("files: %v", listTree(t, vdir))
	}
	if target, err := os.Readlink(filepath.Join(vdir, "color")); err != nil || target != "..data/color" {
		t.Errorf("color -> %q, %v; want a link into ..data", target, err)
	}
	if fi, err := os.Stat(filepath.Join(vdir, "color")); err != nil || fi.Mode().Perm() != 0o400 {
		t.Errorf("color mode %v, %v; want 0400", fi.Mode(), err)
	}
	first, _ := os.Readlink(filepath.Join(vdir, "..data"))
	// The ConfigMap changes and the node starts again: a new version, the old one gone.
	src.data = map[string]string{"color": "red", "size": "XL"}
	if _, err := volumeDirs(context.Background(), nil, configMapPod(), dir, "", src, noEmptyDir); err != nil {
		t.Fatal(err)
	}
	second, _ := os.Readlink(filepath.Join(vdir, "..data"))
	if read("color") != "red" || read("nested/size") != "XL" || first == second || !strings.HasPrefix(second, "..") {
		t.Errorf("after the rewrite: ..data %q -> %q, files %v", first, second, listTree(t, vdir))
	}
	if _, err := os.Lstat(filepath.Join(vdir, first)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old version %s still there: %v", first, err)
	}
}

// TestConfigMapRewriteWritesNothingOutsideItsVolume is the finding of issue 12: the node wrote
// a volume's files as root through paths a container could replace with symbolic links, and
// a rewrite (the node starting again) then wrote wherever the links pointed on the host.
func TestConfigMapRewriteWritesNothingOutsideItsVolume(t *testing.T) {
	dir := t.TempDir()
	src := &mapSources{data: map[string]string{"color": "blue", "size": "L"}}
	vols, err := volumeDirs(context.Background(), nil, configMapPod(), dir, "", src, noEmptyDir)
	if err != nil {
		t.Fatal(err)
	}
	vdir := vols["cfg"]
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "precious"), []byte("host data"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := listTree(t, host)
	// What a container could have done to a volume it could write: every name in it now
	// leads to the host directory.
	for _, name := range []string{"nested", "color", "..data", "..data_tmp"} {
		p := filepath.Join(vdir, name)
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
		target := host
		if name == "color" {
			target = filepath.Join(host, "precious")
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	src.data = map[string]string{"color": "red", "size": "XL"}
	if _, err := volumeDirs(context.Background(), nil, configMapPod(), dir, "", src, noEmptyDir); err != nil {
		t.Fatal(err)
	}
	if after := listTree(t, host); !slices.Equal(before, after) {
		t.Errorf("the host directory changed:\nbefore %v\nafter  %v", before, after)
	}
	for rel, want := range map[string]string{"color": "red", "nested/size": "XL"} {
		if b, err := os.ReadFile(filepath.Join(vdir, rel)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", rel, b, err, want)
		}
	}
	for _, name := range []string{"nested", "color", "..data"} {
		p, err := filepath.EvalSymlinks(filepath.Join(vdir, name))
		if err != nil || !strings.HasPrefix(p, vdir+"/") {
			t.Errorf("%s resolves to %s (%v), outside the volume", name, p, err)
		}
	}
}

func TestWriteVolumeRefusesPathsOutOfIt(t *testing.T) {
	for _, bad := range []string{"../x", "a/../../x", "/etc/passwd", "..data", "..2026", ""} {
		if err := (payload{}).add(bad, nil, 0o644); err == nil {
			t.Errorf("path %q accepted", bad)
		}
	}
	if err := writeVolume(t.TempDir(), payload{"a/b": {data: []byte("x"), mode: 0o644}}, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
}

// sharedClaim is a claim bound to the volume pvc-1, a directory of Gantry's shared storage
// under the returned base.
func sharedClaim(t *testing.T) (string, *corev1.PersistentVolumeClaim, *corev1.PersistentVolume) {
	t.Helper()
	base := t.TempDir()
	if err := os.Mkdir(filepath.Join(base, "pvc-1"), 0o777); err != nil {
		t.Fatal(err)
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "data", UID: "uid-1"},
		Spec:       corev1.PersistentVolumeClaimSpec{VolumeName: "pvc-1"},
		Status:     corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-1"},
		Spec: corev1.PersistentVolumeSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			ClaimRef:    &corev1.ObjectReference{Namespace: "ns", Name: "data", UID: "uid-1"},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				CSI: &corev1.CSIPersistentVolumeSource{Driver: storage.DriverName, VolumeHandle: "pvc-1"},
			},
		},
	}
	return base, pvc, pv
}

func TestServedDirResolvesOnlyGantrysSharedVolumes(t *testing.T) {
	base, pvc, pv := sharedClaim(t)
	got, err := servedDir(pvc, pv, false, base)
	if err != nil || got != filepath.Join(base, "pvc-1") {
		t.Fatalf("servedDir = %q, %v; want %s", got, err, filepath.Join(base, "pvc-1"))
	}
	for _, tc := range []struct {
		name     string
		mutate   func(*corev1.PersistentVolume)
		readOnly bool
		want     string
	}{
		{name: "hostPath", mutate: func(pv *corev1.PersistentVolume) {
			pv.Spec.CSI = nil
			pv.Spec.HostPath = &corev1.HostPathVolumeSource{Path: "/etc"}
		}, want: "not served by this node: it serves PersistentVolumes of the CSI driver shared.storage.gantry.dev (StorageClass gantry-shared) only, not hostPath"},
		{name: "another CSI driver", mutate: func(pv *corev1.PersistentVolume) { pv.Spec.CSI.Driver = "efs.csi.aws.com" }, want: "not CSI driver efs.csi.aws.com"},
		{name: "a handle that is a path", mutate: func(pv *corev1.PersistentVolume) { pv.Spec.CSI.VolumeHandle = "../../etc" }, want: "volume handle"},
		{name: "a handle with no directory", mutate: func(pv *corev1.PersistentVolume) { pv.Spec.CSI.VolumeHandle = "pvc-2" }, want: "does not exist"},
		{name: "bound to another claim", mutate: func(pv *corev1.PersistentVolume) { pv.Spec.ClaimRef.UID = "uid-2" }, want: "not bound to this claim"},
		{name: "ReadOnlyMany mounted writable", mutate: func(pv *corev1.PersistentVolume) {
			pv.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany}
		}, want: "set readOnly: true"},
		{name: "csi.readOnly mounted writable", mutate: func(pv *corev1.PersistentVolume) { pv.Spec.CSI.ReadOnly = true }, want: "set readOnly: true"},
		{name: "ReadOnlyMany mounted readOnly", mutate: func(pv *corev1.PersistentVolume) {
			pv.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany}
		}, readOnly: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pv := pv.DeepCopy()
			tc.mutate(pv)
			got, err := servedDir(pvc, pv, tc.readOnly, base)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("servedDir = %q, %v; want an error containing %q", got, err, tc.want)
			}
		})
	}
	if _, err := servedDir(pvc, pv, false, ""); err == nil {
		t.Error("a node with no shared volumes directory served a claim")
	}
}

func TestClaimVolumeWaitsUntilBound(t *testing.T) {
	base, pvc, pv := sharedClaim(t)
	pending := pvc.DeepCopy()
	pending.Spec.VolumeName, pending.Status.Phase = "", corev1.ClaimPending
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}, Spec: corev1.PodSpec{Volumes: []corev1.Volume{{
		Name: "shared", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data", ReadOnly: true}},
	}}}}
	ctx := context.Background()
	_, err := volumeDirs(ctx, fake.NewClientset(pending, pv), pod, t.TempDir(), base, &mapSources{}, noEmptyDir)
	if !errors.Is(err, ErrClaimNotBound) || !strings.Contains(err.Error(), `spec.volumes[0] (shared): persistentVolumeClaim "data" (phase Pending)`) {
		t.Fatalf("err = %v; want ErrClaimNotBound naming the volume and the claim", err)
	}
	_, err = volumeDirs(ctx, fake.NewClientset(pv), pod, t.TempDir(), base, &mapSources{}, noEmptyDir)
	if err == nil || !strings.Contains(err.Error(), `persistentVolumeClaim "data"`) {
		t.Fatalf("a missing claim: err = %v; want it named", err)
	}
	vols, err := volumeDirs(ctx, fake.NewClientset(pvc, pv), pod, t.TempDir(), base, &mapSources{}, noEmptyDir)
	if err != nil || vols["shared"] != filepath.Join(base, "pvc-1") {
		t.Fatalf("volumeDirs = %v, %v; want shared at %s", vols, err, filepath.Join(base, "pvc-1"))
	}
	if !readOnlyClaim(pod, "shared") {
		t.Error("a claim the pod mounts readOnly is not read-only")
	}
	mounts, err := volumeMounts(pod, &corev1.Container{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "shared", MountPath: "/data", SubPath: "sub"}}}, vols, nil)
	if err != nil || len(mounts) != 1 || !mounts[0].ReadOnly || mounts[0].SubPath != "sub" {
		t.Errorf("mounts = %+v, %v; want /data read-only with its subPath", mounts, err)
	}
}
