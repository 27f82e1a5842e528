// Package sandbox runs pods on this machine, one pod per sandbox: a network, IPC and UTS
// namespace shared by the pod's containers (networked by the CNI bridge plugin with
// host-local IPAM), a pod cgroup holding the pod's CPU and memory limits, and one runc
// container per container, each with its own PID and mount namespaces and an overlayfs
// root over the image layers.
//
// Everything a sandbox owns is recorded under Options.Root, so a restarted Manager lists the
// sandboxes that are still running (Sandboxes) and can adopt or remove them:
//
//	<Root>/runc/                              runc --root: runc's container state
//	<Root>/cni/cache/                         libcni's cache of ADD results (used by DEL)
//	<Root>/cni/networks/                      host-local IPAM reservations
//	<Root>/sandboxes/<id>/sandbox.json        the PodSpec, IP and creation time
//	<Root>/sandboxes/<id>/ns/{net,ipc,uts}    bind mounts that keep the pod's namespaces
//	<Root>/sandboxes/<id>/shm/                the pod's /dev/shm (a tmpfs, shared by its containers)
//	<Root>/sandboxes/<id>/etc/                generated hosts, hostname and resolv.conf
//	<Root>/sandboxes/<id>/volumes/<name>/     emptyDir volumes (VolumeDir)
//	<Root>/sandboxes/<id>/logs/<name>.log     a container's stdout and stderr, appended across restarts
//	<Root>/sandboxes/<id>/containers/<name>/  config.json (the OCI bundle), rootfs/ (overlay mount),
//	                                          upper/ and work/ (the writable layer), state.json,
//	                                          pid and exit (written by the shim), status.json
//
// Each container runs under a small detached shim, `/bin/sh -c` holding `runc run --keep` in
// the foreground: it outlives the Manager's process and writes the container's exit status to
// a file when runc returns, so exit codes survive a restart of gantry. --keep leaves the
// container's cgroup in place until the Manager has read its OOM-kill counter.
package sandbox
