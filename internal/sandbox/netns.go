package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// podNamespaces are the namespaces a pod's containers share, in the order they are made.
var podNamespaces = []string{"net", "ipc", "uts"}

// createNamespaces makes new network, IPC and UTS namespaces, sets the UTS namespace's
// hostname, and keeps each alive with a bind mount on dir/<kind>.
func createNamespaces(dir, hostname string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread goes back to the host's namespaces when done. If it cannot, it stays
		// locked: the runtime then ends it with this goroutine (or parks it, if it is the
		// main thread), and no other goroutine ever runs in the pod's namespaces.
		orig := map[string]*os.File{}
		defer func() {
			for _, f := range orig {
				f.Close()
			}
		}()
		for _, kind := range podNamespaces {
			f, err := os.Open("/proc/thread-self/ns/" + kind)
			if err != nil {
				errc <- fmt.Errorf("opening this thread's %s namespace: %w", kind, err)
				runtime.UnlockOSThread()
				return
			}
			orig[kind] = f
		}
		err := func() error {
			if err := unix.Unshare(unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS); err != nil {
				return fmt.Errorf("unshare: %w", err)
			}
			if err := unix.Sethostname([]byte(hostname)); err != nil {
				return fmt.Errorf("setting hostname %q: %w", hostname, err)
			}
			for _, kind := range podNamespaces {
				p := filepath.Join(dir, kind)
				f, err := os.OpenFile(p, os.O_CREATE|os.O_RDONLY, 0o400)
				if err != nil {
					return err
				}
				f.Close()
				if err := unix.Mount("/proc/thread-self/ns/"+kind, p, "", unix.MS_BIND, ""); err != nil {
					return fmt.Errorf("bind-mounting %s namespace on %s: %w", kind, p, err)
				}
			}
			return nil
		}()
		restored := true
		for kind, flag := range map[string]int{"net": unix.CLONE_NEWNET, "ipc": unix.CLONE_NEWIPC, "uts": unix.CLONE_NEWUTS} {
			if unix.Setns(int(orig[kind].Fd()), flag) != nil {
				restored = false
			}
		}
		if restored {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// removeNamespaces unmounts and removes what createNamespaces made; missing pieces are fine.
func removeNamespaces(dir string) error {
	var paths []string
	for _, kind := range append(slices.Clone(podNamespaces), "user") {
		paths = append(paths, filepath.Join(dir, kind))
	}
	return unmountAll(paths)
}

// isNamespace reports whether path is a mounted namespace file.
func isNamespace(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// unmount detaches every mount stacked on path; not mounted or missing is not an error.
func unmount(path string) error {
	for i := 0; i < 16; i++ {
		err := unix.Unmount(path, unix.MNT_DETACH)
		switch {
		case err == nil:
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		default:
			return fmt.Errorf("unmounting %s: %w", path, err)
		}
	}
	return fmt.Errorf("unmounting %s: still mounted after 16 unmounts", path)
}

// mountsUnder lists the mount points at or below dir, from /proc/self/mountinfo.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPath(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, sc.Err()
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space, …).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
