package storage

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// CheckClaim says why the provisioner cannot make a volume for pvc, naming the field, or
// returns nil. A shared directory is a filesystem (not a block device), new (no data source
// to copy from), and made for the claim (no selector over existing volumes).
func CheckClaim(pvc *corev1.PersistentVolumeClaim) error {
	s := pvc.Spec
	if s.VolumeMode != nil && *s.VolumeMode == corev1.PersistentVolumeBlock {
		return fmt.Errorf("spec.volumeMode: Block is not supported by %s, only Filesystem", DriverName)
	}
	if s.Selector != nil {
		return fmt.Errorf("spec.selector: not supported for a claim %s provisions (make a PersistentVolume and name it in spec.volumeName instead)", DriverName)
	}
	if s.DataSource != nil || s.DataSourceRef != nil {
		return fmt.Errorf("spec.dataSource: %s makes empty volumes; copying from another volume or a snapshot is not supported", DriverName)
	}
	if len(s.AccessModes) == 0 {
		return fmt.Errorf("spec.accessModes: required")
	}
	return nil
}

// MakePV is the PersistentVolume the provisioner makes for pvc of class sc: named name (its
// directory's handle too), bound in advance to pvc, with pvc's access modes and requested
// capacity (recorded, not enforced) and sc's reclaim policy. A volume whose policy is Delete
// carries Finalizer, so its directory goes before it does.
func MakePV(pvc *corev1.PersistentVolumeClaim, sc *storagev1.StorageClass, name string) *corev1.PersistentVolume {
	policy := corev1.PersistentVolumeReclaimDelete
	if sc.ReclaimPolicy != nil {
		policy = *sc.ReclaimPolicy
	}
	capacity := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if capacity.IsZero() {
		capacity = resource.MustParse("1Gi")
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{ProvisionedByAnnotation: DriverName},
			Labels:      map[string]string{"app.kubernetes.io/managed-by": "gantry"},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: capacity},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: policy,
			StorageClassName:              sc.Name,
			VolumeMode:                    ptr.To(corev1.PersistentVolumeFilesystem),
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID, ResourceVersion: pvc.ResourceVersion,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				CSI: &corev1.CSIPersistentVolumeSource{Driver: DriverName, VolumeHandle: name, FSType: ""},
			},
		},
	}
	if policy == corev1.PersistentVolumeReclaimDelete {
		pv.Finalizers = []string{Finalizer}
	}
	return pv
}
