package storage

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func TestParseParameters(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      map[string]string
		want    Parameters
		wantErr string
	}{
		{name: "none", want: Parameters{DirectoryPerms: 0o777}},
		{name: "all", in: map[string]string{"directoryPerms": "750", "uid": "1000", "gid": "2000"}, want: Parameters{DirectoryPerms: 0o750, UID: 1000, GID: 2000}},
		{name: "leading zero", in: map[string]string{"directoryPerms": "0700"}, want: Parameters{DirectoryPerms: 0o700}},
		{name: "not octal", in: map[string]string{"directoryPerms": "789"}, wantErr: "parameters.directoryPerms"},
		{name: "too wide", in: map[string]string{"directoryPerms": "4777"}, wantErr: "parameters.directoryPerms"},
		{name: "uid beyond a pod's ids", in: map[string]string{"uid": "65536"}, wantErr: "parameters.uid"},
		{name: "negative gid", in: map[string]string{"gid": "-1"}, wantErr: "parameters.gid"},
		{name: "unknown", in: map[string]string{"basePath": "/etc"}, wantErr: "parameters.basePath: not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseParameters(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v; want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestCheckClass(t *testing.T) {
	sc := MakeClass(true)
	if err := CheckClass(sc); err != nil {
		t.Fatal(err)
	}
	sc.MountOptions = []string{"noatime"}
	if err := CheckClass(sc); err == nil || !strings.Contains(err.Error(), "mountOptions") {
		t.Errorf("err = %v; want mountOptions refused", err)
	}
}

func claim(mutate func(*corev1.PersistentVolumeClaim)) *corev1.PersistentVolumeClaim {
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "data", UID: "1234", ResourceVersion: "7"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			StorageClassName: ptr.To(ClassName),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("5Gi")}},
		},
	}
	if mutate != nil {
		mutate(pvc)
	}
	return pvc
}

func TestCheckClaim(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*corev1.PersistentVolumeClaim)
		wantErr string
	}{
		{name: "ReadWriteMany"},
		{name: "ReadOnlyMany", mutate: func(c *corev1.PersistentVolumeClaim) {
			c.Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany}
		}},
		{name: "block", mutate: func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeMode = ptr.To(corev1.PersistentVolumeBlock) }, wantErr: "spec.volumeMode"},
		{name: "selector", mutate: func(c *corev1.PersistentVolumeClaim) { c.Spec.Selector = &metav1.LabelSelector{} }, wantErr: "spec.selector"},
		{name: "data source", mutate: func(c *corev1.PersistentVolumeClaim) {
			c.Spec.DataSource = &corev1.TypedLocalObjectReference{Kind: "PersistentVolumeClaim", Name: "other"}
		}, wantErr: "spec.dataSource"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckClaim(claim(tc.mutate))
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v; want one naming %s", err, tc.wantErr)
			}
		})
	}
}

func TestMakePV(t *testing.T) {
	pvc := claim(nil)
	pv := MakePV(pvc, MakeClass(true), VolumeName(string(pvc.UID)))
	if pv.Name != "pvc-1234" || pv.Spec.CSI == nil || pv.Spec.CSI.Driver != DriverName || pv.Spec.CSI.VolumeHandle != "pvc-1234" {
		t.Errorf("name %s, source %+v; want pvc-1234 with a CSI source of %s and the same handle", pv.Name, pv.Spec.CSI, DriverName)
	}
	if pv.Spec.HostPath != nil || pv.Spec.Local != nil {
		t.Error("the volume names a host path")
	}
	want := corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: "ns", Name: "data", UID: "1234", ResourceVersion: "7"}
	if diff := cmp.Diff(&want, pv.Spec.ClaimRef); diff != "" {
		t.Errorf("claimRef (-want +got)\n%s", diff)
	}
	if got := pv.Spec.Capacity[corev1.ResourceStorage]; got.Cmp(resource.MustParse("5Gi")) != 0 {
		t.Errorf("capacity %s; want the request, 5Gi", got.String())
	}
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.Finalizers[0] != Finalizer {
		t.Errorf("policy %s, finalizers %v; want Delete with %s", pv.Spec.PersistentVolumeReclaimPolicy, pv.Finalizers, Finalizer)
	}
	if pv.Spec.StorageClassName != ClassName || pv.Annotations[ProvisionedByAnnotation] != DriverName {
		t.Errorf("class %q, annotations %v", pv.Spec.StorageClassName, pv.Annotations)
	}

	retain := MakeClass(false)
	retain.ReclaimPolicy = ptr.To(corev1.PersistentVolumeReclaimRetain)
	pv = MakePV(pvc, retain, "pvc-1234")
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain || len(pv.Finalizers) != 0 {
		t.Errorf("policy %s, finalizers %v; want Retain and none", pv.Spec.PersistentVolumeReclaimPolicy, pv.Finalizers)
	}
}

func TestMakeClass(t *testing.T) {
	if sc := MakeClass(true); sc.Annotations[DefaultClassAnnotation] != "true" || sc.Provisioner != DriverName ||
		*sc.VolumeBindingMode != storagev1.VolumeBindingImmediate || *sc.ReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		t.Errorf("default class: %+v", sc)
	}
	if sc := MakeClass(false); sc.Annotations[DefaultClassAnnotation] == "true" {
		t.Error("a class that is not the default says it is")
	}
}

func TestResolveTakesOnlyPlainNamesOfDirectories(t *testing.T) {
	base := t.TempDir()
	outside := t.TempDir()
	if err := os.Mkdir(filepath.Join(base, "pvc-a"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Resolve(base, "pvc-a")
	if err != nil || got != filepath.Join(base, "pvc-a") {
		t.Fatalf("Resolve(pvc-a) = %q, %v", got, err)
	}
	for _, h := range []string{"..", "../etc", "/etc", "a/b", "", ".", "UPPER", "link", "file"} {
		if got, err := Resolve(base, h); err == nil {
			t.Errorf("Resolve(%q) = %q; want a refusal", h, got)
		}
	}
	if _, err := Resolve(base, "pvc-gone"); !errors.Is(err, ErrNoVolume) {
		t.Errorf("Resolve of a missing volume: %v; want ErrNoVolume", err)
	}
}

func TestDirsCreateAndRemove(t *testing.T) {
	d := Dirs{Base: filepath.Join(t.TempDir(), "shared")}
	p := Parameters{DirectoryPerms: 0o750}
	if os.Geteuid() == 0 {
		p.UID, p.GID = 1000, 2000
	}
	if err := d.Create("pvc-a", p); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(d.Base, "pvc-a"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o750 {
		t.Errorf("mode %v; want 0750", fi.Mode().Perm())
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != p.UID || int(st.Gid) != p.GID {
		t.Errorf("owner %d:%d; want %d:%d", st.Uid, st.Gid, p.UID, p.GID)
	}
	// Again (a restart between the directory and the PersistentVolume): kept, and its data.
	if err := os.WriteFile(filepath.Join(d.Base, "pvc-a", "data"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Create("pvc-a", p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.Base, "pvc-a", "data")); err != nil {
		t.Errorf("a second Create lost the volume's data: %v", err)
	}
	if err := d.Create("../escape", p); err == nil {
		t.Error("Create took a handle that is a path")
	}

	// A pod planted a link to a directory outside: removing the volume leaves that alone.
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "keep"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(d.Base, "pvc-a", "link")); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove("pvc-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.Base, "pvc-a")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the volume is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Errorf("removing the volume reached through its link: %v", err)
	}
	if err := d.Remove("pvc-a"); err != nil {
		t.Errorf("removing a volume already gone: %v", err)
	}
}

func TestWantsVolume(t *testing.T) {
	sc := MakeClass(true)
	for _, tc := range []struct {
		name   string
		mutate func(*corev1.PersistentVolumeClaim)
		sc     *storagev1.StorageClass
		exists bool
		want   bool
	}{
		{name: "pending claim of the class", sc: sc, want: true},
		{name: "another provisioner's class", sc: nil},
		{name: "volume made already", sc: sc, exists: true},
		{name: "bound", sc: sc, mutate: func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeName = "pv" }},
		{name: "lost", sc: sc, mutate: func(c *corev1.PersistentVolumeClaim) { c.Status.Phase = corev1.ClaimLost }},
		{name: "being deleted", sc: sc, mutate: func(c *corev1.PersistentVolumeClaim) { c.DeletionTimestamp = &metav1.Time{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pvc := claim(func(c *corev1.PersistentVolumeClaim) {
				c.Status.Phase = corev1.ClaimPending
				if tc.mutate != nil {
					tc.mutate(c)
				}
			})
			if got := wantsVolume(pvc, tc.sc, tc.exists); got != tc.want {
				t.Errorf("wantsVolume = %v; want %v", got, tc.want)
			}
		})
	}
}

func TestVolumeAction(t *testing.T) {
	now := &metav1.Time{}
	for _, tc := range []struct {
		name   string
		mutate func(*corev1.PersistentVolume)
		want   volumeStep
	}{
		{name: "bound", want: leave},
		{name: "released, Delete", mutate: func(pv *corev1.PersistentVolume) { pv.Status.Phase = corev1.VolumeReleased }, want: reclaim},
		{name: "released, Retain", mutate: func(pv *corev1.PersistentVolume) {
			pv.Status.Phase, pv.Spec.PersistentVolumeReclaimPolicy = corev1.VolumeReleased, corev1.PersistentVolumeReclaimRetain
		}, want: leave},
		{name: "deleted, Delete", mutate: func(pv *corev1.PersistentVolume) { pv.DeletionTimestamp = now }, want: finalize},
		{name: "deleted, Retain, finalizer left from a policy change", mutate: func(pv *corev1.PersistentVolume) {
			pv.DeletionTimestamp, pv.Spec.PersistentVolumeReclaimPolicy = now, corev1.PersistentVolumeReclaimRetain
		}, want: finalizeKeepingDirectory},
		{name: "deleted, finalizer gone", mutate: func(pv *corev1.PersistentVolume) { pv.DeletionTimestamp, pv.Finalizers = now, nil }, want: leave},
		{name: "another provisioner's", mutate: func(pv *corev1.PersistentVolume) {
			pv.Status.Phase, pv.Annotations[ProvisionedByAnnotation] = corev1.VolumeReleased, "efs.csi.aws.com"
		}, want: leave},
		{name: "our annotation on a hostPath volume", mutate: func(pv *corev1.PersistentVolume) {
			pv.Status.Phase, pv.Spec.CSI = corev1.VolumeReleased, nil
			pv.Spec.HostPath = &corev1.HostPathVolumeSource{Path: "/"}
		}, want: leave},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pv := MakePV(claim(nil), MakeClass(true), "pvc-1234")
			pv.Status.Phase = corev1.VolumeBound
			if tc.mutate != nil {
				tc.mutate(pv)
			}
			if got := volumeAction(pv); got != tc.want {
				t.Errorf("volumeAction = %v; want %v", got, tc.want)
			}
		})
	}
}

// TestOwnsOnlyItsMachinesVolumes: in a cluster a provisioner reclaims the volumes that name
// its node, and of those made before volumes named theirs, the ones whose directory is on its
// machine; a single server's owns every volume.
func TestOwnsOnlyItsMachinesVolumes(t *testing.T) {
	dir := t.TempDir()
	p, err := NewProvisioner(Options{Client: fake.NewClientset(), Dir: dir, NodeName: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.dirs.Create("pvc-here", DefaultParameters); err != nil {
		t.Fatal(err)
	}
	pv := func(handle string, annotations map[string]string) *corev1.PersistentVolume {
		return &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: handle, Annotations: annotations},
			Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: DriverName, VolumeHandle: handle}}}}
	}
	for _, tc := range []struct {
		name string
		pv   *corev1.PersistentVolume
		want bool
	}{
		{"names this node", pv("pvc-x", map[string]string{NodeAnnotation: "a"}), true},
		{"names another node, though a directory of its name is here", pv("pvc-here", map[string]string{NodeAnnotation: "b"}), false},
		{"names none, its directory here", pv("pvc-here", nil), true},
		{"names none, its directory elsewhere", pv("pvc-elsewhere", nil), false},
	} {
		if got := p.owns(tc.pv); got != tc.want {
			t.Errorf("%s: owns = %v, want %v", tc.name, got, tc.want)
		}
	}
	single, err := NewProvisioner(Options{Client: fake.NewClientset(), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !single.owns(pv("pvc-elsewhere", map[string]string{NodeAnnotation: "b"})) {
		t.Error("a single server's provisioner does not own every volume")
	}
}
