package sandbox

import (
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultCapabilities is Docker's default set: what a non-privileged container keeps.
var defaultCapabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
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

// deniedSyscalls fail with EPERM under the default seccomp profile. It is a deny-list, not
// Docker's allow-list: everything else is allowed, and these are the calls a container
// without CAP_SYS_ADMIN has no business making, which have been the way out of containers
// or into the kernel: loading kernels and modules, (un)mounting and changing namespaces,
// keyrings, BPF and perf, raw I/O ports, the clock, swap, reboot, quotas, accounting, file
// handles (open_by_handle_at escapes bind mounts), userfaultfd and the obsolete uselib/
// nfsservctl. Most would fail anyway for want of a capability; the filter keeps a kernel bug
// in one of them from mattering.
var deniedSyscalls = []string{
	"acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
	"delete_module", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick",
	"get_kernel_syms", "get_mempolicy", "init_module", "ioperm", "iopl", "kcmp",
	"kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind", "mount",
	"mount_setattr", "move_mount", "move_pages", "name_to_handle_at", "nfsservctl",
	"open_by_handle_at", "open_tree", "perf_event_open", "pivot_root", "query_module",
	"quotactl", "reboot", "request_key", "set_mempolicy", "setns", "settimeofday",
	"stime", "swapoff", "swapon", "sysfs", "_sysctl", "umount", "umount2", "unshare",
	"uselib", "userfaultfd", "ustat", "vm86", "vm86old",
}

// seccompProfile is the default profile: allow, except deniedSyscalls (EPERM), clone with
// CLONE_NEWUSER (EPERM: no new user namespaces), and clone3 (ENOSYS, whose flags sit in
// memory a filter cannot read: libc then falls back to clone, which the filter can check).
func seccompProfile() *specs.LinuxSeccomp {
	eperm, enosys := uint(unix.EPERM), uint(unix.ENOSYS)
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32, specs.ArchAARCH64, specs.ArchARM},
		Syscalls: []specs.LinuxSyscall{
			{Names: deniedSyscalls, Action: specs.ActErrno, ErrnoRet: &eperm},
			{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys},
			{
				Names: []string{"clone"}, Action: specs.ActErrno, ErrnoRet: &eperm,
				Args: []specs.LinuxSeccompArg{{Index: 0, Value: unix.CLONE_NEWUSER, ValueTwo: unix.CLONE_NEWUSER, Op: specs.OpMaskedEqual}},
			},
		},
	}
}

// specInput is what buildSpec needs; paths are absolute.
type specInput struct {
	Container  ContainerSpec
	CgroupPath string
	NSDir      string // holds net, ipc and uts namespace bind mounts
	ShmDir     string
	EtcDir     string // hosts, hostname, resolv.conf
}

// defaultPath is the PATH a container gets when its environment has none.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// buildSpec is the OCI runtime spec of one container: not privileged, no new privileges,
// Docker's default capabilities, the default seccomp profile, masked and read-only /proc
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
	caps := append([]string(nil), defaultCapabilities...)
	pids := int64(DefaultPidsLimit)
	s := &specs.Spec{
		Version: "1.0.2",
		Process: &specs.Process{
			User: specs.User{UID: c.UID, GID: c.GID},
			Args: c.Args,
			Env:  env,
			Cwd:  cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			NoNewPrivileges: true,
		},
		Root: &specs.Root{Path: "rootfs"},
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
			Seccomp:       seccompProfile(),
		},
	}
	for _, mt := range c.Mounts {
		opts := []string{"rbind", "rprivate"}
		if mt.ReadOnly {
			opts = append(opts, "ro")
		}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: mt.Destination, Type: "bind", Source: mt.Source, Options: opts})
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
