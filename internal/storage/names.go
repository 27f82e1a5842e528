package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/util/validation"
)

const (
	// ClassName is the StorageClass gantry server creates.
	ClassName = "gantry-shared"
	// DriverName is the provisioner of the class and the CSI driver its PersistentVolumes
	// name; the node serves volumes of this driver, and only these.
	DriverName = "shared.storage.gantry.dev"
	// Finalizer holds a PersistentVolume whose reclaim policy is Delete until its directory
	// is removed.
	Finalizer = DriverName + "/directory"
	// DefaultClassAnnotation marks the cluster's default StorageClass.
	DefaultClassAnnotation = "storageclass.kubernetes.io/is-default-class"
	// ProvisionedByAnnotation names the provisioner of a PersistentVolume, as Kubernetes'
	// PersistentVolume controller and external provisioners write it.
	ProvisionedByAnnotation = "pv.kubernetes.io/provisioned-by"
	// NodeAnnotation names the node of the machine that holds a PersistentVolume's
	// directory (the server whose provisioner made it, in a cluster of several).
	NodeAnnotation = DriverName + "/node"
)

// ErrNoVolume is the failure to resolve a handle whose directory does not exist.
var ErrNoVolume = errors.New("shared volume does not exist")

// VolumeName is the name of the PersistentVolume, and the handle of the directory, that the
// provisioner makes for the claim with uid, as Kubernetes' provisioners name them.
func VolumeName(uid string) string { return "pvc-" + uid }

// CheckHandle checks a volume handle: a DNS label (lowercase letters, digits and dashes, at
// most 63), so it is one plain path component, never "..", "/" or empty.
func CheckHandle(handle string) error {
	if msgs := validation.IsDNS1123Label(handle); len(msgs) > 0 {
		return fmt.Errorf("volume handle %q: %s", handle, msgs[0])
	}
	return nil
}

// Resolve returns the directory of handle under base, the node's shared-volumes
// directory. The handle must be a plain name (CheckHandle), and what it names must be a
// directory itself, not a symbolic link: nothing from the API decides where on the host a
// pod's volume lies.
func Resolve(base, handle string) (string, error) {
	if err := CheckHandle(handle); err != nil {
		return "", err
	}
	root, err := os.OpenRoot(base)
	if err != nil {
		return "", fmt.Errorf("shared volumes directory: %w", err)
	}
	defer root.Close()
	fi, err := root.Lstat(handle)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("volume handle %q: %w under %s", handle, ErrNoVolume, base)
	}
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("volume handle %q: %s is not a directory", handle, filepath.Join(base, handle))
	}
	return filepath.Join(base, handle), nil
}
