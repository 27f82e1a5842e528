package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A pod with a user namespace (PodSpec.UserNamespace) gets UserNSSize ids of its own: its
// uid and gid 0 to 65535 are host ids HostID to HostID+65535, where no other pod's and no
// user of the host's are. Ranges start at userNSFirstHostID, above the ids distributions give
// users and /etc/subuid hands out, and are handed out lowest first.
const (
	UserNSSize        = 1 << 16
	userNSFirstHostID = 1 << 31
	// userNSSlots stops short of the last range, whose last id would be (uid_t)-1.
	userNSSlots = (1<<32-userNSFirstHostID)/UserNSSize - 1
)

// IDRange maps a pod's ids 0 to Size-1 onto the host's HostID to HostID+Size-1.
type IDRange struct {
	HostID uint32 `json:"hostID"`
	Size   uint32 `json:"size"`
}

// allocateIDRange reserves a free range for sandbox id. The ranges in use are read from
// the sandboxes on disk the first time, then kept in memory.
func (m *Manager) allocateIDRange(id string) (*IDRange, error) {
	m.mu.Lock()
	if m.idRanges == nil {
		m.mu.Unlock()
		used, err := m.idRangesOnDisk()
		if err != nil {
			return nil, err
		}
		m.mu.Lock()
		if m.idRanges == nil {
			m.idRanges = used
		}
	}
	defer m.mu.Unlock()
	for slot := uint32(0); slot < userNSSlots; slot++ {
		host := userNSFirstHostID + slot*UserNSSize
		if owner, ok := m.idRanges[host]; !ok || owner == id {
			m.idRanges[host] = id
			return &IDRange{HostID: host, Size: UserNSSize}, nil
		}
	}
	return nil, errors.New("every user namespace id range is in use")
}

// releaseIDRange gives back what sandbox id held.
func (m *Manager) releaseIDRange(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for host, owner := range m.idRanges {
		if owner == id {
			delete(m.idRanges, host)
		}
	}
}

func (m *Manager) idRangesOnDisk() (map[uint32]string, error) {
	entries, err := os.ReadDir(filepath.Join(m.opts.Root, "sandboxes"))
	if err != nil {
		return nil, fmt.Errorf("listing sandboxes: %w", err)
	}
	used := map[uint32]string{}
	for _, e := range entries {
		if !e.IsDir() || checkID("sandbox ID", e.Name()) != nil {
			continue
		}
		if sb, err := m.loadSandbox(e.Name()); err == nil && sb.UserNS != nil {
			used[sb.UserNS.HostID] = sb.ID
		}
	}
	return used, nil
}

// createUserNamespaces makes the pod's user namespace with r's mapping and, owned by it, its
// network, IPC and UTS namespaces, as a Kubernetes pod with hostUsers: false has them: root
// in the pod then administers its own network (binds low ports, mounts sysfs) and nothing
// of the host's. A helper, unshare(1) running sh, makes them and waits on its stdin; this
// process writes the mapping, keeps the namespaces with bind mounts on dir/<kind> and lets
// the helper go. The helper unshares after it starts, rather than being cloned into new
// namespaces, because Go cannot vfork into a new user namespace and copying this process's
// page tables costs some 20 ms.
func createUserNamespaces(dir, unshare, hostname string, r IDRange) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	cmd := exec.Command(unshare, "--user", "--net", "--ipc", "--uts", "--", "/bin/sh", "-c", "echo; read x")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the namespaces' helper: %w", err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	// sh prints a line once unshare has made the namespaces and run it.
	if _, err := stdout.Read(make([]byte, 1)); err != nil {
		return fmt.Errorf("the namespaces' helper (%s) failed: %w", unshare, err)
	}
	proc := "/proc/" + strconv.Itoa(cmd.Process.Pid)
	mapping := fmt.Sprintf("0 %d %d\n", r.HostID, r.Size)
	for _, f := range []string{"uid_map", "gid_map"} {
		if err := os.WriteFile(filepath.Join(proc, f), []byte(mapping), 0); err != nil {
			return fmt.Errorf("writing the pod's %s: %w", f, err)
		}
	}
	for _, kind := range append([]string{"user"}, podNamespaces...) {
		p := filepath.Join(dir, kind)
		f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o400)
		if err != nil {
			return err
		}
		f.Close()
		if err := unix.Mount(filepath.Join(proc, "ns", kind), p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mounting %s namespace on %s: %w", kind, p, err)
		}
	}
	return setHostname(filepath.Join(dir, "uts"), hostname)
}

// setHostname sets the hostname of the UTS namespace kept at path, from a thread that
// joins it and then goes back (or, if it cannot, ends with its goroutine).
func setHostname(path, hostname string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/uts")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		ns, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWUTS); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("joining the pod's UTS namespace: %w", err)
			return
		}
		err = unix.Sethostname([]byte(hostname))
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWUTS) == nil {
			runtime.UnlockOSThread()
		}
		if err != nil {
			err = fmt.Errorf("setting hostname %q: %w", hostname, err)
		}
		errc <- err
	}()
	return <-errc
}

// idmapLayers mounts each layer at dir/idmapped/<i>, its owners shifted by the user
// namespace kept at usernsPath (a file of the layer's owned by host uid 0 is owned by the
// pod's root), for overlayfs to take as lower directories; overlayfs cannot itself be
// idmapped, its layers can. It returns the mounts, to unmount once the overlay holds them.
func idmapLayers(dir, usernsPath string, layers []string) ([]string, error) {
	ns, err := unix.Open(usernsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the pod's user namespace: %w", err)
	}
	defer unix.Close(ns) //nolint:errcheck // read-only descriptor
	base := filepath.Join(dir, "idmapped")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, err
	}
	var out []string
	for i, l := range layers {
		target := filepath.Join(base, strconv.Itoa(i))
		if err := os.MkdirAll(target, 0o700); err != nil {
			return out, err
		}
		if err := idmapMount(l, target, ns, true); err != nil {
			return out, fmt.Errorf("layer %s: %w", l, err)
		}
		out = append(out, target)
	}
	return out, nil
}

// idmapMount mounts a copy of the mount at src on target, idmapped by user namespace ns.
// When the filesystem cannot be idmapped and required is false, the copy is mounted as it
// is: its files keep the host's owners, and the pod sees what others may read.
func idmapMount(src, target string, ns int, required bool) error {
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree: %w", err)
	}
	defer unix.Close(fd) //nolint:errcheck // a detached tree: closing it frees it
	err = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns)})
	unsupported := errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)
	if err != nil && (required || !unsupported) {
		return fmt.Errorf("idmapping the mount (user namespaces need a filesystem that supports idmapped mounts): %w", err)
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// unmountAll detaches the mounts at paths and removes the mount points.
func unmountAll(paths []string) error {
	var errs []error
	for _, p := range paths {
		if err := unmount(p); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// MakeSearchable lets every user search directory dir (o+x, g+x), without listing it. A pod
// with a user namespace reaches its sandbox as a uid of its own: the directories above
// Options.Root must let it pass (CreateSandbox says which does not), and this is how the
// one that holds Root is made to.
func MakeSearchable(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o011 == 0o011 {
		return nil
	}
	return os.Chmod(dir, fi.Mode().Perm()|0o011)
}

// CheckSearchable checks that a pod's uid can reach dir: every directory from / down to it
// lets others search it. runc mounts a container's root filesystem and volumes from inside
// the pod's user namespace, as the pod's root, which is nobody to the host's directories.
func CheckSearchable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("user namespaces: %s is not searchable by other users, so a pod's root (a uid of its own) cannot reach its sandbox under %s: chmod o+x %s", d, dir, d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// idmapHostMounts stages, for a container of a pod with a user namespace, every mount whose
// source is the host's rather than the sandbox's (the node's configMap, secret, downward
// API and projected volumes, the queue-proxy's binary) as an idmapped mount on
// dir/subpaths/h<index>: the pod's root owns there what the host's root owns, as the kubelet
// and its runtime show such volumes to a pod with hostUsers: false, and runc, which mounts
// from inside the user namespace, need not reach the node's private directories. orig are
// the mounts as asked, mounts as stageSubPaths left them (subPaths already staged). The
// sandbox's own directories (emptyDirs, /etc files, /dev/shm) are bound as they are: the
// pod writes them with its host ids.
func idmapHostMounts(dir, sandboxDir, usernsPath string, orig, mounts []Mount) ([]Mount, error) {
	ns, err := unix.Open(usernsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the pod's user namespace: %w", err)
	}
	defer unix.Close(ns) //nolint:errcheck // read-only descriptor
	out := make([]Mount, len(mounts))
	copy(out, mounts)
	for i, mt := range orig {
		if within(sandboxDir, mt.Source) {
			continue
		}
		fi, err := os.Stat(out[i].Source)
		if err != nil {
			return nil, fmt.Errorf("volume mount %s: %w", mt.Destination, err)
		}
		target := filepath.Join(dir, subPathsDir, "h"+strconv.Itoa(i))
		if err := os.MkdirAll(filepath.Dir(target), 0o711); err != nil {
			return nil, err
		}
		if fi.IsDir() {
			err = os.Mkdir(target, 0o700)
		} else {
			err = os.WriteFile(target, nil, 0o600)
		}
		if err != nil {
			return nil, err
		}
		if err := idmapMount(out[i].Source, target, ns, false); err != nil {
			return nil, fmt.Errorf("volume mount %s: %w", mt.Destination, err)
		}
		out[i].Source = target
	}
	return out, nil
}

// within reports whether path is dir or lies under it.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
