package sandbox

import (
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultCapabilities is the set a container keeps unless its Security says otherwise:
// containerd's default (and Docker's), what Kubernetes' RuntimeDefault means.
var DefaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// Security is what a container's process may do besides its user: the node resolves it from
// the pod's and the container's security contexts. The zero value is the default: the
// default capabilities, a writable root, the default seccomp profile. The process always
// runs with no_new_privs (setuid binaries and file capabilities grant nothing).
type Security struct {
	// Capabilities the process holds (bounding, permitted and effective sets, with names
	// such as "CAP_NET_RAW"); nil means DefaultCapabilities and an empty slice none. A
	// process that does not run as uid 0 keeps them in its bounding set only, as in
	// Kubernetes.
	Capabilities []string
	// ReadOnlyRoot mounts the container's root filesystem read-only (its volumes keep their
	// own mode).
	ReadOnlyRoot bool
	// Unconfined runs the process with no seccomp filter; the node allows it only when the
	// pod asks and the server permits it.
	Unconfined bool
	// SupplementaryGIDs are the process's additional groups.
	SupplementaryGIDs []uint32
}

// capabilities is the set s gives the process.
func (s Security) capabilities() []string {
	if s.Capabilities == nil {
		return slices.Clone(DefaultCapabilities)
	}
	return slices.Clone(s.Capabilities)
}

// maskedPaths are hidden from containers (an empty file or tmpfs mounted over them).
var maskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
	"/sys/firmware", "/sys/devices/virtual/powercap",
}

// readonlyPaths are mounted read-only in containers.
var readonlyPaths = []string{
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
}

// specInput is what buildSpec needs; paths are absolute.
type specInput struct {
	Container  ContainerSpec
	CgroupPath string
	NSDir      string // holds net, ipc and uts namespace bind mounts
	ShmDir     string
	EtcDir     string   // hosts, hostname, resolv.conf
	UserNS     *IDRange // the pod's user namespace (NSDir/user), or nil
}

// defaultPath is the PATH a container gets when its environment has none.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// buildSpec is the OCI runtime spec of one container: not privileged, no new privileges,
// the capabilities, root filesystem mode and seccomp profile of its Security (by default
// containerd's capabilities and the default seccomp profile), masked and read-only /proc
// paths, the pod's network, IPC and UTS namespaces with its own PID and mount namespaces, the
// pod's /dev/shm and /etc files, and cgroup limits under the pod's cgroup.
func buildSpec(in specInput) *specs.Spec {
	c := in.Container
	env := append([]string(nil), c.Env...)
	hasPath := false
	for _, kv := range env {
		if len(kv) >= 5 && kv[:5] == "PATH=" {
			hasPath = true
		}
	}
	if !hasPath {
		env = append([]string{defaultPath}, env...)
	}
	cwd := c.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	caps := c.Security.capabilities()
	pids := int64(DefaultPidsLimit)
	oomScoreAdj := c.OOMScoreAdj
	s := &specs.Spec{
		Version: "1.0.2",
		Process: &specs.Process{
			User: specs.User{UID: c.UID, GID: c.GID, AdditionalGids: slices.Clone(c.Security.SupplementaryGIDs)},
			Args: c.Args,
			Env:  env,
			Cwd:  cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			NoNewPrivileges: true,
			OOMScoreAdj:     &oomScoreAdj,
		},
		Root: &specs.Root{Path: "rootfs", Readonly: c.Security.ReadOnlyRoot},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "bind", Source: in.ShmDir, Options: []string{"rbind", "nosuid", "noexec", "nodev"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
			{Destination: "/etc/hosts", Type: "bind", Source: filepath.Join(in.EtcDir, "hosts"), Options: []string{"rbind", "rprivate"}},
			{Destination: "/etc/hostname", Type: "bind", Source: filepath.Join(in.EtcDir, "hostname"), Options: []string{"rbind", "rprivate"}},
			{Destination: "/etc/resolv.conf", Type: "bind", Source: filepath.Join(in.EtcDir, "resolv.conf"), Options: []string{"rbind", "rprivate"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: in.CgroupPath,
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
				Pids:    &specs.LinuxPids{Limit: &pids},
			},
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.MountNamespace},
				{Type: specs.NetworkNamespace, Path: filepath.Join(in.NSDir, "net")},
				{Type: specs.IPCNamespace, Path: filepath.Join(in.NSDir, "ipc")},
				{Type: specs.UTSNamespace, Path: filepath.Join(in.NSDir, "uts")},
			},
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
		},
	}
	for _, mt := range c.Mounts {
		opts := []string{"rbind", "rprivate"}
		if mt.ReadOnly {
			opts = append(opts, "ro")
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: mt.Destination, Type: "bind", Source: mt.Source, Options: opts})
	}
	if r := in.UserNS; r != nil {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace, Path: filepath.Join(in.NSDir, "user")})
		ids := []specs.LinuxIDMapping{{ContainerID: 0, HostID: r.HostID, Size: r.Size}}
		s.Linux.UIDMappings, s.Linux.GIDMappings = ids, slices.Clone(ids)
	}
	if !c.Security.Unconfined {
		s.Linux.Seccomp = defaultSeccomp(caps)
	}
	if c.MemoryBytes > 0 {
		limit := c.MemoryBytes
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &limit}
	}
	if c.CPUMillis > 0 {
		quota, period := c.CPUMillis*cpuPeriod/1000, uint64(cpuPeriod)
		shares := uint64(max(c.CPUMillis*1024/1000, 2))
		s.Linux.Resources.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period, Shares: &shares}
	}
	return s
}
