package storage

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// Parameters are what a StorageClass of this provisioner may set, under the names EFS's CSI
// driver gives them: the mode and owner of each new volume's directory. Owners are ids as
// pods see them (a pod's user namespace maps its ids onto the volume's, see docs/serverless.md).
type Parameters struct {
	// DirectoryPerms is the mode of the directory ("directoryPerms", octal; default 777, so
	// every user of every pod that mounts the claim may write).
	DirectoryPerms os.FileMode
	// UID and GID own the directory ("uid", "gid"; default 0, the pods' root).
	UID, GID int
}

// DefaultParameters are the parameters of a class that sets none.
var DefaultParameters = Parameters{DirectoryPerms: 0o777}

// parameterNames are the keys ParseParameters knows.
var parameterNames = []string{"directoryPerms", "gid", "uid"}

// ParseParameters reads a StorageClass's parameters; an unknown key or a bad value is an
// error naming parameters.<key>.
func ParseParameters(in map[string]string) (Parameters, error) {
	p := DefaultParameters
	for _, k := range slices.Sorted(maps.Keys(in)) {
		v := in[k]
		switch k {
		case "directoryPerms":
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil || m > 0o777 {
				return p, fmt.Errorf("parameters.directoryPerms: %q is not an octal mode between 0 and 777", v)
			}
			p.DirectoryPerms = os.FileMode(m)
		case "uid", "gid":
			id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil || id > 65535 {
				return p, fmt.Errorf("parameters.%s: %q is not an id between 0 and 65535 (the ids a pod's user namespace has)", k, v)
			}
			if k == "uid" {
				p.UID = int(id)
			} else {
				p.GID = int(id)
			}
		default:
			return p, fmt.Errorf("parameters.%s: not supported by %s (supported: %s)", k, DriverName, strings.Join(parameterNames, ", "))
		}
	}
	return p, nil
}

// CheckClass checks what a StorageClass of this provisioner sets besides its parameters:
// mount options are refused (the node bind-mounts a directory; there is nothing to pass
// them to).
func CheckClass(sc *storagev1.StorageClass) error {
	if len(sc.MountOptions) > 0 {
		return fmt.Errorf("StorageClass %s: mountOptions: not supported by %s (its volumes are directories bind-mounted into pods)", sc.Name, DriverName)
	}
	_, err := ParseParameters(sc.Parameters)
	if err != nil {
		return fmt.Errorf("StorageClass %s: %w", sc.Name, err)
	}
	return nil
}

// MakeClass is the StorageClass gantry server creates; isDefault marks it the cluster's
// default class. Claims bind as soon as they are made (Immediate): a shared directory can be
// reached from wherever the pod lands.
func MakeClass(isDefault bool) *storagev1.StorageClass {
	sc := &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:   ClassName,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "gantry"},
		},
		Provisioner:       DriverName,
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingImmediate),
	}
	if isDefault {
		sc.Annotations = map[string]string{DefaultClassAnnotation: "true"}
	}
	return sc
}

// MakeCSIDriver is the CSIDriver object of DriverName: no attach step (a directory has none
// to do), so the attach/detach controller leaves its volumes alone.
func MakeCSIDriver() *storagev1.CSIDriver {
	return &storagev1.CSIDriver{
		ObjectMeta: metav1.ObjectMeta{Name: DriverName, Labels: map[string]string{"app.kubernetes.io/managed-by": "gantry"}},
		Spec: storagev1.CSIDriverSpec{
			AttachRequired:       ptr.To(false),
			PodInfoOnMount:       ptr.To(false),
			VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent},
		},
	}
}

// EnsureClass creates the CSIDriver and the StorageClass ClassName, the default class unless
// another class is already the default. Objects that exist are left as they are.
func EnsureClass(ctx context.Context, c kubernetes.Interface) error {
	if _, err := c.StorageV1().CSIDrivers().Create(ctx, MakeCSIDriver(), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating CSIDriver %s: %w", DriverName, err)
	}
	if _, err := c.StorageV1().StorageClasses().Get(ctx, ClassName, metav1.GetOptions{}); err == nil {
		return nil
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading StorageClass %s: %w", ClassName, err)
	}
	classes, err := c.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing StorageClasses: %w", err)
	}
	isDefault := true
	for _, sc := range classes.Items {
		if sc.Annotations[DefaultClassAnnotation] == "true" {
			isDefault = false
		}
	}
	if _, err := c.StorageV1().StorageClasses().Create(ctx, MakeClass(isDefault), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating StorageClass %s: %w", ClassName, err)
	}
	return nil
}
