package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gantry-run/gantry/internal/atomicfile"
)

// PodSpec is what a sandbox is made from; the node converts a Pod into it.
type PodSpec struct {
	// ID is the stable sandbox ID (the node passes the pod UID).
	ID string `json:"id"`
	// Namespace and Name identify the pod, for listings.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Hostname is the pod's hostname; default Name.
	Hostname string `json:"hostname"`
	// CPUMillis is the pod's CPU quota in millicores; 0 means none.
	CPUMillis int64 `json:"cpuMillis,omitempty"`
	// MemoryBytes is the pod's memory limit; 0 means none.
	MemoryBytes int64 `json:"memoryBytes,omitempty"`
	// EphemeralStorageBytes bounds the writable layers and emptyDir volumes together; 0
	// means DefaultEphemeralStorageBytes. The node enforces it with StorageUsage.
	EphemeralStorageBytes int64 `json:"ephemeralStorageBytes,omitempty"`
	// Runtime is the OCI runtime of the pod's containers: RuntimeRunc (the default) or
	// RuntimeRunsc, gVisor, which CreateSandbox refuses when runsc is not installed.
	Runtime string `json:"runtime,omitempty"`
	// UserNamespace runs the pod in a user namespace of its own (Kubernetes' hostUsers:
	// false): its ids 0 to UserNSSize-1 are a range of host ids no other pod has, its
	// network, IPC and UTS namespaces belong to it, and its containers' image layers are
	// idmapped into it.
	UserNamespace bool `json:"userNamespace,omitempty"`
	// Labels are recorded for re-adoption after a restart.
	Labels map[string]string `json:"labels,omitempty"`
	// ResolvConf is the pod's /etc/resolv.conf; nil means the host's, without loopback
	// nameservers.
	ResolvConf []byte `json:"-"`
	// IP is the address the pod must have, chosen before it was placed (a serverless pod's
	// node is named after it); it must lie in ServerlessRange of the pod CIDR. Nil lets
	// host-local hand one out of SharedRange.
	IP net.IP `json:"requestedIP,omitempty"`
}

// Sandbox is a created sandbox.
type Sandbox struct {
	// Spec is the PodSpec it was created from, with defaults applied.
	Spec PodSpec `json:"spec"`
	// ID is Spec.ID.
	ID string `json:"-"`
	// IP is the pod's address on the bridge.
	IP net.IP `json:"ip"`
	// NetNSPath is the bind mount that holds the pod's network namespace.
	NetNSPath string `json:"netnsPath"`
	// Dir is the sandbox's state directory.
	Dir string `json:"-"`
	// CreatedAt is when the sandbox was created.
	CreatedAt time.Time `json:"createdAt"`
	// UserNS is the host ids of the pod's user namespace; nil when it has none.
	UserNS *IDRange `json:"userns,omitempty"`
}

// SandboxInfo is a sandbox as found on disk, with its containers.
type SandboxInfo struct {
	Sandbox
	// NetworkReady says the pod's network namespace is still there (false after a reboot or
	// an interrupted create: such a sandbox can only be removed).
	NetworkReady bool
	// Containers are the sandbox's containers, sorted by name.
	Containers []ContainerStatus
}

// CreateSandbox makes the pod's namespaces, attaches it to the network, creates its cgroup
// and writes its /etc files. It is idempotent: a sandbox that exists with the same ID is
// returned as it is. A failed create leaves nothing behind.
func (m *Manager) CreateSandbox(ctx context.Context, spec PodSpec) (*Sandbox, error) {
	if err := checkID("sandbox ID", spec.ID); err != nil {
		return nil, fmt.Errorf("creating sandbox: %w", err)
	}
	unlock := m.lock(spec.ID)
	defer unlock()

	if sb, err := m.loadSandbox(spec.ID); err == nil {
		if sb.IP != nil && isNamespace(sb.NetNSPath) {
			return sb, nil
		}
		// Left half-made by a crash, or its namespaces went with a reboot: start over.
		if err := m.removeSandboxLocked(ctx, spec.ID); err != nil {
			return nil, fmt.Errorf("creating sandbox %s: removing a stale one: %w", spec.ID, err)
		}
	}
	if spec.Hostname == "" {
		spec.Hostname = spec.Name
	}
	if spec.Hostname == "" {
		spec.Hostname = spec.ID
	}
	if len(spec.Hostname) > 63 {
		spec.Hostname = spec.Hostname[:63]
	}
	if spec.EphemeralStorageBytes == 0 {
		spec.EphemeralStorageBytes = DefaultEphemeralStorageBytes
	}
	switch spec.Runtime {
	case RuntimeRunc:
	case RuntimeRunsc:
		if m.runscRT.bin == "" {
			return nil, fmt.Errorf("creating sandbox %s: the gvisor runtime needs runsc (apt package runsc), which is not installed", spec.ID)
		}
		if spec.UserNamespace {
			// runsc puts its sandbox in a user namespace of its own and cannot join
			// another (its gofer's setns fails with EINVAL).
			return nil, fmt.Errorf("creating sandbox %s: a runsc sandbox cannot have the node's user namespace", spec.ID)
		}
	default:
		return nil, fmt.Errorf("creating sandbox %s: runtime %q: not one this node runs (runc, runsc)", spec.ID, spec.Runtime)
	}
	start, took := time.Now(), createTimes{}
	sb, err := m.createSandbox(ctx, spec, &took)
	if err != nil {
		if rerr := m.removeSandboxLocked(context.WithoutCancel(ctx), spec.ID); rerr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up: %w", rerr))
		}
		return nil, fmt.Errorf("creating sandbox %s: %w", spec.ID, err)
	}
	m.log.Debug("sandbox created", "sandbox", sb.ID, "pod", spec.Namespace+"/"+spec.Name, "ip", sb.IP,
		"took", time.Since(start), "state", took.state, "namespaces", took.namespaces, "cgroup", took.cgroup, "network", took.network)
	return sb, nil
}

// createTimes are the parts of a sandbox's creation that take time, for the debug log.
type createTimes struct{ state, namespaces, cgroup, network time.Duration }

func (m *Manager) createSandbox(ctx context.Context, spec PodSpec, took *createTimes) (*Sandbox, error) {
	t := time.Now()
	dir := m.sandboxDir(spec.ID)
	sb := &Sandbox{
		Spec:      spec,
		ID:        spec.ID,
		NetNSPath: filepath.Join(dir, "ns", "net"),
		Dir:       dir,
		CreatedAt: time.Now().UTC(),
	}
	for _, d := range []string{"ns", "shm", "etc", "volumes", "logs", "containers"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	// Recorded first, so that a crash from here on leaves a sandbox Sandboxes lists and
	// RemoveSandbox cleans up.
	if err := m.saveSandbox(sb); err != nil {
		return nil, err
	}
	took.state, t = time.Since(t), time.Now()
	if spec.UserNamespace {
		if m.unshare == "" {
			return nil, errors.New("user namespaces need unshare (apt package util-linux)")
		}
		if err := CheckSearchable(filepath.Join(m.opts.Root, "sandboxes")); err != nil {
			return nil, err
		}
		r, err := m.allocateIDRange(spec.ID)
		if err != nil {
			return nil, err
		}
		sb.UserNS = r
		if err := m.saveSandbox(sb); err != nil {
			return nil, err
		}
		if err := createUserNamespaces(filepath.Join(dir, "ns"), m.unshare, spec.Hostname, *r); err != nil {
			return nil, fmt.Errorf("creating namespaces: %w", err)
		}
	} else if err := createNamespaces(filepath.Join(dir, "ns"), spec.Hostname); err != nil {
		return nil, fmt.Errorf("creating namespaces: %w", err)
	}
	if err := unix.Mount("shm", filepath.Join(dir, "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=65536k"); err != nil {
		return nil, fmt.Errorf("mounting the pod's /dev/shm: %w", err)
	}
	took.namespaces, t = time.Since(t), time.Now()
	if err := m.cgroups.createPod(m.cgroupPath(spec.ID, ""), spec.CPUMillis, spec.MemoryBytes); err != nil {
		return nil, err
	}
	took.cgroup, t = time.Since(t), time.Now()
	ip, err := m.net.add(ctx, spec.ID, sb.NetNSPath, spec.IP)
	if err != nil {
		return nil, err
	}
	took.network = time.Since(t)
	sb.IP = ip
	if err := writeEtcFiles(filepath.Join(dir, "etc"), spec.Hostname, ip, spec.ResolvConf); err != nil {
		return nil, err
	}
	if err := m.saveSandbox(sb); err != nil {
		return nil, err
	}
	return sb, nil
}

// writeEtcFiles writes the pod's hosts, hostname and resolv.conf.
func writeEtcFiles(dir, hostname string, ip net.IP, resolv []byte) error {
	hosts := fmt.Sprintf("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n", ip, hostname)
	if err := atomicfile.Write(filepath.Join(dir, "hosts"), []byte(hosts), 0o644); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, "hostname"), []byte(hostname+"\n"), 0o644); err != nil {
		return err
	}
	if resolv == nil {
		resolv = resolvConf()
	}
	return atomicfile.Write(filepath.Join(dir, "resolv.conf"), resolv, 0o644)
}

// resolvConf is the host's resolv.conf for the pods, with loopback nameservers dropped: a
// stub resolver on the host's 127.0.0.53 is not reachable from a pod's network namespace.
// Under systemd-resolved the upstream servers are in /run/systemd/resolve/resolv.conf.
func resolvConf() []byte {
	for _, p := range []string{"/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var out []string
		servers := 0
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == "nameserver" {
				if ip := net.ParseIP(f[1]); ip == nil || ip.IsLoopback() {
					continue
				}
				servers++
			}
			out = append(out, line)
		}
		if servers > 0 {
			return []byte(strings.Join(out, "\n"))
		}
	}
	return []byte("# gantry: the host has no nameserver a pod can reach\n")
}

func (m *Manager) saveSandbox(sb *Sandbox) error {
	b, err := json.MarshalIndent(sb, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(sb.Dir, "sandbox.json"), b, 0o600)
}

func (m *Manager) loadSandbox(id string) (*Sandbox, error) {
	dir := m.sandboxDir(id)
	b, err := os.ReadFile(filepath.Join(dir, "sandbox.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("sandbox %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", id, err)
	}
	var sb Sandbox
	if err := json.Unmarshal(b, &sb); err != nil {
		return nil, fmt.Errorf("sandbox %s: reading sandbox.json: %w", id, err)
	}
	sb.ID, sb.Dir = sb.Spec.ID, dir
	return &sb, nil
}

// Sandboxes lists the sandboxes recorded under Root, running or not, sorted by ID: after a
// restart the node adopts those it still wants and removes the rest.
func (m *Manager) Sandboxes(ctx context.Context) ([]SandboxInfo, error) {
	entries, err := os.ReadDir(filepath.Join(m.opts.Root, "sandboxes"))
	if err != nil {
		return nil, fmt.Errorf("listing sandboxes: %w", err)
	}
	var out []SandboxInfo
	for _, e := range entries {
		if !e.IsDir() || checkID("sandbox ID", e.Name()) != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		info, err := m.sandboxInfo(ctx, e.Name())
		if errors.Is(err, ErrNotFound) {
			// A directory without sandbox.json: a create that crashed before writing it.
			info = &SandboxInfo{Sandbox: Sandbox{ID: e.Name(), Spec: PodSpec{ID: e.Name()}, Dir: m.sandboxDir(e.Name())}}
		} else if err != nil {
			return nil, err
		}
		out = append(out, *info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (m *Manager) sandboxInfo(ctx context.Context, id string) (*SandboxInfo, error) {
	unlock := m.lock(id)
	defer unlock()
	sb, err := m.loadSandbox(id)
	if err != nil {
		return nil, err
	}
	info := &SandboxInfo{Sandbox: *sb, NetworkReady: isNamespace(sb.NetNSPath)}
	names, err := m.containerNames(id)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		st, err := m.containerStatusLocked(ctx, id, n)
		if err != nil {
			return nil, err
		}
		info.Containers = append(info.Containers, st)
	}
	return info, nil
}

func (m *Manager) containerNames(id string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(m.sandboxDir(id), "containers"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: listing containers: %w", id, err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && checkID("container name", e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// RemoveSandbox kills the sandbox's containers, detaches it from the network, unmounts its
// root filesystems and namespaces, removes its cgroups and deletes its state, logs included.
// It is idempotent: removing a sandbox that does not exist succeeds. Call StopContainer
// first for a graceful stop; RemoveSandbox kills at once.
func (m *Manager) RemoveSandbox(ctx context.Context, sandboxID string) error {
	if err := checkID("sandbox ID", sandboxID); err != nil {
		return fmt.Errorf("removing sandbox: %w", err)
	}
	unlock := m.lock(sandboxID)
	defer unlock()
	if err := m.removeSandboxLocked(ctx, sandboxID); err != nil {
		return fmt.Errorf("removing sandbox %s: %w", sandboxID, err)
	}
	m.log.Debug("sandbox removed", "sandbox", sandboxID)
	return nil
}

func (m *Manager) removeSandboxLocked(ctx context.Context, id string) error {
	dir := m.sandboxDir(id)
	var errs []error
	names, err := m.containerNames(id)
	if err != nil {
		errs = append(errs, err)
	}
	for _, n := range names {
		if err := m.stopContainerLocked(ctx, id, n, 0); err != nil {
			errs = append(errs, err)
		}
	}
	// Containers whose directory is gone but runc still knows (a crash in StartContainer).
	for _, rt := range m.runtimes() {
		for _, rid := range m.runcList(ctx, rt, id+"_") {
			if err := m.runcDelete(ctx, rt, rid); err != nil {
				errs = append(errs, err)
			}
		}
	}
	netns := filepath.Join(dir, "ns", "net")
	if !isNamespace(netns) {
		netns = ""
	}
	if err := m.net.del(ctx, id, netns); err != nil {
		errs = append(errs, err)
	}
	if err := removeNamespaces(filepath.Join(dir, "ns")); err != nil {
		errs = append(errs, err)
	}
	if err := unmount(filepath.Join(dir, "shm")); err != nil {
		errs = append(errs, err)
	}
	if err := m.cgroups.remove(m.cgroupPath(id, "")); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Never delete through a mount: a rootfs still mounted would take its volumes with it.
	mounts, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	if len(mounts) > 0 {
		return fmt.Errorf("still mounted, not deleting %s: %v", dir, mounts)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	m.releaseIDRange(id)
	return nil
}

// RemoveAll stops every container of every sandbox under the manager's root, each with
// grace, and removes the sandboxes: what `gantry cleanup` and test teardown do after a
// server stopped. It returns the pods whose sandboxes it removed, as namespace/name.
func (m *Manager) RemoveAll(ctx context.Context, grace time.Duration) ([]string, error) {
	infos, err := m.Sandboxes(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, info := range infos {
		for _, c := range info.Containers {
			_ = m.StopContainer(ctx, info.ID, c.Name, grace)
		}
		if err := m.RemoveSandbox(ctx, info.ID); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, info.Spec.Namespace+"/"+info.Spec.Name)
	}
	return removed, errors.Join(errs...)
}
