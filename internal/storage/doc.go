// Package storage is Gantry's persistent shared storage, the local equivalent of EFS on
// Fargate: a StorageClass (gantry-shared, the default class unless another is) and a
// provisioner that binds the PersistentVolumeClaims of that class — ReadWriteMany,
// ReadWriteOnce, ReadOnlyMany — to PersistentVolumes backed by a directory of the data dir.
//
// A PersistentVolume of this package names its directory by a CSI source with Gantry's own
// driver name (DriverName) and a volume handle that is a plain generated name, never a
// path: the node resolves the handle under its shared-volumes directory (Resolve) and
// refuses any other source, so no PersistentVolume can point a pod at a host path.
//
// The provisioner (provisioner.go) is a controller on client-go informers, so it runs in
// gantry server now and against any cluster later. The directories' I/O (dirs.go) goes
// through os.Root: nothing it creates, changes or removes can lie outside the base
// directory. Capacity is recorded on the PersistentVolume but not enforced: like EFS, a
// shared volume is elastic. In a cluster of several servers with nodes, a volume's directory
// is on the machine whose provisioner made it (NodeAnnotation), which alone removes it; one
// provisioner at a time makes new volumes (Options.Elect).
package storage
