package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"time"
)

// Defaults for Options.
const (
	DefaultPodCIDR      = "10.244.0.0/16"
	DefaultBridge       = "gantry0"
	DefaultCgroupParent = "gantry"
	// DefaultEphemeralStorageBytes is the ephemeral storage a pod gets when its spec says none.
	DefaultEphemeralStorageBytes = 20 << 30
	// DefaultPidsLimit bounds the processes of one container.
	DefaultPidsLimit = 4096
)

// Timeouts for the commands the Manager runs; each applies when the caller's context has a
// later deadline or none.
const (
	runcTimeout  = 30 * time.Second
	cniTimeout   = 60 * time.Second
	startTimeout = 60 * time.Second
)

// DefaultCNIBinDirs are searched for the CNI plugins: Debian's containernetworking-plugins
// installs to /usr/lib/cni, upstream releases to /opt/cni/bin.
var DefaultCNIBinDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// requiredPlugins are the CNI plugins a Manager uses.
var requiredPlugins = []string{"bridge", "host-local", "loopback"}

// ErrNotFound is returned (wrapped) for a sandbox or container that does not exist.
var ErrNotFound = errors.New("not found")

// idPattern is what a sandbox ID or container name may look like: it becomes part of paths,
// runc container IDs and cgroup names.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// Options configures a Manager.
type Options struct {
	// Root holds all state (see the package doc); it survives restarts. Required.
	Root string
	// RuncPath is the runc binary; default "runc" from PATH.
	RuncPath string
	// RuncRoot is runc's --root; default <Root>/runc.
	RuncRoot string
	// RunscPath is gVisor's runsc, for sandboxes whose Runtime is RuntimeRunsc; default
	// "runsc" from PATH. Its state is under <Root>/runsc.
	RunscPath string
	// CNIBinDirs are searched for CNI plugins; default DefaultCNIBinDirs.
	CNIBinDirs []string
	// PodCIDR is the range pod IPs come from; its first address is the bridge's (the pods'
	// gateway). Default DefaultPodCIDR (Kubernetes' customary pod range, away from the usual
	// LAN and cloud ranges); NewManager refuses one that overlaps a host route.
	PodCIDR string
	// NoMasquerade turns off the CNI bridge plugin's masquerade of what pods send beyond
	// PodCIDR: gantry server and gantry agent masquerade in the pod network's rules instead
	// (internal/podnet), in one rule for every pod and only what leaves the cluster's range,
	// so that with an overlay pods of other nodes see a pod's own address. A sandbox is
	// detached as it was attached, whatever this says now.
	NoMasquerade bool
	// Bridge is the host bridge the pods' veths join; default DefaultBridge.
	Bridge string
	// CgroupParent is the cgroup (relative to each hierarchy's root) under which pod
	// cgroups are made: <CgroupParent>/<pod ID>/<container>. Default DefaultCgroupParent.
	CgroupParent string
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Manager creates, runs and removes sandboxes. It is safe for concurrent use; operations on
// one sandbox are serialised.
type Manager struct {
	opts     Options
	runcRT   ociRuntime
	runscRT  ociRuntime // bin is "" when runsc is not installed
	sh       string
	unshare  string // util-linux's unshare, which makes a pod's user namespace; "" when missing
	net      *network
	cgroups  *cgroupRoots
	log      *slog.Logger
	mu       sync.Mutex
	sandboxM map[string]*sync.Mutex
	// idRanges are the user namespace id ranges in use, by first host id: the sandbox
	// that holds each (loaded from disk at the first allocation).
	idRanges map[uint32]string
	// minOOMScoreAdj is the lowest OOM score adjustment containers can be given here.
	minOOMScoreAdj int
}

// NewManager checks that runc and the CNI plugins are installed and prepares the state
// directories under opts.Root. It adopts whatever an earlier Manager left there: list it with
// Sandboxes.
func NewManager(ctx context.Context, opts Options) (*Manager, error) {
	if opts.Root == "" {
		return nil, errors.New("sandbox: options: root is required")
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("sandbox: options: root: %w", err)
	}
	opts.Root = root
	if opts.RuncPath == "" {
		opts.RuncPath = "runc"
	}
	if opts.RuncRoot == "" {
		opts.RuncRoot = filepath.Join(root, "runc")
	}
	if len(opts.CNIBinDirs) == 0 {
		opts.CNIBinDirs = DefaultCNIBinDirs
	}
	if opts.PodCIDR == "" {
		opts.PodCIDR = DefaultPodCIDR
	}
	if opts.Bridge == "" {
		opts.Bridge = DefaultBridge
	}
	if opts.CgroupParent == "" {
		opts.CgroupParent = DefaultCgroupParent
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if _, _, err := net.ParseCIDR(opts.PodCIDR); err != nil {
		return nil, fmt.Errorf("sandbox: options: pod CIDR %q: %w", opts.PodCIDR, err)
	}
	if err := checkPodCIDR(opts.PodCIDR, opts.Bridge); err != nil {
		return nil, fmt.Errorf("sandbox: options: %w", err)
	}
	if len(opts.Bridge) > 15 {
		return nil, fmt.Errorf("sandbox: options: bridge %q: longer than 15 characters", opts.Bridge)
	}
	if !idPattern.MatchString(filepath.Base(opts.CgroupParent)) {
		return nil, fmt.Errorf("sandbox: options: cgroup parent %q: not a valid cgroup name", opts.CgroupParent)
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("sandbox: must run as root (namespaces, mounts, cgroups and CNI need it)")
	}

	runc, err := exec.LookPath(opts.RuncPath)
	if err != nil {
		return nil, fmt.Errorf("sandbox: runc %q not found (install the apt package runc): %w", opts.RuncPath, err)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		return nil, fmt.Errorf("sandbox: sh not found (the container shim needs it; apt package dash): %w", err)
	}
	var missing []string
	for _, p := range requiredPlugins {
		if findPlugin(opts.CNIBinDirs, p) == "" {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("sandbox: CNI plugins %v not found in %v (install the apt package containernetworking-plugins)", missing, opts.CNIBinDirs)
	}
	cg, err := findCgroupRoots()
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	for _, d := range []string{opts.RuncRoot, filepath.Join(root, "sandboxes"), filepath.Join(root, "cni", "cache"), filepath.Join(root, "cni", "networks")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("sandbox: preparing state: %w", err)
		}
	}
	// A pod with a user namespace mounts its root filesystem and volumes as a uid of its
	// own: it must be able to search (not list) the way to its sandbox.
	for _, d := range []string{root, filepath.Join(root, "sandboxes")} {
		if err := MakeSearchable(d); err != nil {
			return nil, fmt.Errorf("sandbox: preparing state: %w", err)
		}
	}
	unshare, _ := exec.LookPath("unshare")
	if opts.RunscPath == "" {
		opts.RunscPath = "runsc"
	}
	var runsc ociRuntime
	if bin, err := exec.LookPath(opts.RunscPath); err == nil {
		// Its network is the host kernel's stack in the pod's network namespace
		// (--network=host): the runsc of Debian 12 (20221219) takes any network namespace
		// for the host's on Linux 6.x and refuses its own netstack there. The container's
		// seccomp filter applies inside gVisor's kernel (--oci-seccomp), which otherwise
		// serves what it filters (io_uring among them).
		runsc = ociRuntime{name: "runsc", bin: bin, global: []string{"--root", filepath.Join(root, "runsc"), "--network=host", "--oci-seccomp"}}
		if err := os.MkdirAll(filepath.Join(root, "runsc"), 0o700); err != nil {
			return nil, fmt.Errorf("sandbox: preparing state: %w", err)
		}
	}
	m := &Manager{
		unshare:  unshare,
		runscRT:  runsc,
		opts:     opts,
		runcRT:   ociRuntime{name: "runc", bin: runc, global: []string{"--root", opts.RuncRoot}},
		sh:       sh,
		cgroups:  cg,
		log:      opts.Logger,
		sandboxM: map[string]*sync.Mutex{},

		minOOMScoreAdj: lowestOOMScoreAdj(),
	}
	if m.minOOMScoreAdj > -1000 {
		m.log.Warn("without CAP_SYS_RESOURCE, containers' OOM score adjustments are raised to this process's", "oom_score_adj", m.minOOMScoreAdj)
	}
	m.net, err = newNetwork(opts, filepath.Join(root, "cni"))
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	return m, nil
}

func findPlugin(dirs []string, name string) string {
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// lock serialises operations on one sandbox; call the returned func to unlock.
func (m *Manager) lock(id string) func() {
	m.mu.Lock()
	l, ok := m.sandboxM[id]
	if !ok {
		l = &sync.Mutex{}
		m.sandboxM[id] = l
	}
	m.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func (m *Manager) sandboxDir(id string) string {
	return filepath.Join(m.opts.Root, "sandboxes", id)
}

func (m *Manager) containerDir(id, name string) string {
	return filepath.Join(m.sandboxDir(id), "containers", name)
}

// LogPath is the file that holds the stdout and stderr of a sandbox's container, appended
// across restarts of the container and kept until the sandbox is removed.
func (m *Manager) LogPath(sandboxID, name string) string {
	return filepath.Join(m.sandboxDir(sandboxID), "logs", name+".log")
}

// runcID is the container's name in runc.
func runcID(sandboxID, name string) string {
	return sandboxID + "_" + name
}

// cgroupPath is a container's cgroup relative to each hierarchy's root; the pod's is its
// parent.
func (m *Manager) cgroupPath(sandboxID, name string) string {
	p := "/" + filepath.Join(m.opts.CgroupParent, sandboxID)
	if name != "" {
		p += "/" + name
	}
	return p
}

func checkID(what, id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%s %q: must match %s", what, id, idPattern)
	}
	return nil
}

// withTimeout bounds ctx by d unless it already ends sooner.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
