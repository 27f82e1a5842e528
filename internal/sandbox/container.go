package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gantry-run/gantry/internal/atomicfile"
)

// Reasons a stopped container gives, as Kubernetes names them.
const (
	ReasonOOMKilled = "OOMKilled"
	ReasonError     = "Error"
	ReasonCompleted = "Completed"
	// ReasonUnknown: the container's process is gone and no exit status was recorded (the
	// host rebooted, or its shim was killed).
	ReasonUnknown = "Unknown"
)

// exitUnknown is the exit code reported with ReasonUnknown, as the kubelet reports a
// container whose status it lost.
const exitUnknown = 137

// ContainerSpec is one container of a pod, as the node resolved it.
type ContainerSpec struct {
	// Name is the container's name, unique in the pod.
	Name string
	// Layers are the image's unpacked layer directories, bottom first (read-only lowerdirs).
	Layers []string
	// Args is the full argv (the node resolves command and args against the image).
	Args []string
	// Env is KEY=VALUE; PATH gets a default when missing.
	Env []string
	// WorkingDir is the process's working directory; default "/".
	WorkingDir string
	// UID and GID the process runs as.
	UID, GID uint32
	// Mounts are host files or directories bound into the container.
	Mounts []Mount
	// Security is what the process may do: capabilities, root filesystem, seccomp.
	Security Security
	// CPUMillis and MemoryBytes are the container's own limits; 0 means none (the pod's
	// limits still apply).
	CPUMillis, MemoryBytes int64
	// OOMScoreAdj is its processes' OOM score adjustment (-1000 to 1000): the node gives
	// the kubelet's, higher than its own, so the host's OOM killer takes a pod's process
	// first. The zero value is 0, not the adjustment of the process that starts it; a value
	// below what this process may give (without CAP_SYS_RESOURCE, its own) is raised to it.
	OOMScoreAdj int
}

// Mount binds a host path into a container.
type Mount struct {
	// Source is the host file or directory.
	Source string
	// Destination is the absolute path in the container.
	Destination string
	// ReadOnly mounts it read-only.
	ReadOnly bool
	// SubPath, when set, mounts the file or directory at this relative path inside Source
	// instead, resolved without leaving Source (see stageSubPaths): Source is a volume the
	// container may have written symbolic links into.
	SubPath string
}

// ContainerStatus is what a container is doing, or how it ended.
type ContainerStatus struct {
	// Name is the container's name.
	Name string `json:"name"`
	// Running says the container's process is alive.
	Running bool `json:"running"`
	// Pid is the container's init process on the host (0 when not running).
	Pid int `json:"pid"`
	// StartedAt is when the current (or last) run started.
	StartedAt time.Time `json:"startedAt"`
	// FinishedAt, ExitCode, OOMKilled and Reason describe how the last run ended; zero
	// while running. A process killed by a signal exits with 128+signal.
	FinishedAt time.Time `json:"finishedAt"`
	ExitCode   int       `json:"exitCode"`
	OOMKilled  bool      `json:"oomKilled"`
	// Reason is ReasonCompleted (exit 0), ReasonError, ReasonOOMKilled or ReasonUnknown.
	Reason string `json:"reason,omitempty"`
	// RestartCount counts the starts of this container after its first.
	RestartCount int `json:"restartCount"`
}

// containerState is recorded when a container starts (state.json).
type containerState struct {
	RuncID       string    `json:"runcID"`
	ShimPid      int       `json:"shimPid"`
	StartedAt    time.Time `json:"startedAt"`
	PodOOMKills  int64     `json:"podOOMKills"` // the pod cgroup's counter at start
	RestartCount int       `json:"restartCount"`
}

// StartContainer runs a container in the sandbox: an overlayfs root over the image layers
// with a fresh writable layer, an OCI bundle, and runc under a detached shim, with stdin
// reading EOF and stdout and stderr appended to LogPath. It returns once the process runs.
// Starting a container that has exited starts it again (RestartCount grows); starting one
// that is running does nothing.
func (m *Manager) StartContainer(ctx context.Context, sandboxID string, c ContainerSpec) error {
	return m.StartContainers(ctx, sandboxID, []ContainerSpec{c})[0]
}

// StartContainers starts cs in the sandbox side by side, each as StartContainer does, and
// returns their errors in the order of cs (nil for each that runs). A pod's containers start
// in the time of the slowest rather than of all: most of a start is runc's, in processes of
// its own, and a pod's first start waits for every container.
func (m *Manager) StartContainers(ctx context.Context, sandboxID string, cs []ContainerSpec) []error {
	errs := make([]error, len(cs))
	var todo []int
	for i, c := range cs {
		if err := checkID("container name", c.Name); err != nil {
			errs[i] = fmt.Errorf("starting container in sandbox %s: %w", sandboxID, err)
			continue
		}
		switch {
		case len(c.Args) == 0:
			errs[i] = fmt.Errorf("starting container %s in sandbox %s: args: must not be empty", c.Name, sandboxID)
		case slices.ContainsFunc(cs[:i], func(o ContainerSpec) bool { return o.Name == c.Name }):
			errs[i] = fmt.Errorf("starting container %s in sandbox %s: named twice", c.Name, sandboxID)
		default:
			todo = append(todo, i)
		}
	}
	unlock := m.lock(sandboxID)
	defer unlock()
	var wg sync.WaitGroup
	for _, i := range todo {
		wg.Go(func() {
			if err := m.startContainer(ctx, sandboxID, cs[i]); err != nil {
				errs[i] = fmt.Errorf("starting container %s in sandbox %s: %w", cs[i].Name, sandboxID, err)
			}
		})
	}
	wg.Wait()
	return errs
}

// startContainer starts c with the sandbox locked. Each container has a directory, a runc
// container and a cgroup of its own: several start at once (StartContainers).
func (m *Manager) startContainer(ctx context.Context, sandboxID string, c ContainerSpec) error {
	ctx, cancel := withTimeout(ctx, startTimeout)
	defer cancel()
	sb, err := m.loadSandbox(sandboxID)
	if err != nil {
		return err
	}
	if !isNamespace(sb.NetNSPath) {
		return errors.New("the sandbox's network namespace is gone; remove and recreate the sandbox")
	}
	dir := m.containerDir(sandboxID, c.Name)
	restarts := 0
	if prev, err := m.loadState(dir); err == nil {
		st, err := m.containerStatusLocked(ctx, sandboxID, c.Name)
		if err != nil {
			return err
		}
		if st.Running {
			return nil
		}
		if err := m.stopContainerLocked(ctx, sandboxID, c.Name, 0); err != nil {
			return err
		}
		restarts = prev.RestartCount + 1
	}
	// A root left mounted by a start that failed before recording its state.
	if err := unmount(filepath.Join(dir, "rootfs")); err != nil {
		return err
	}
	if err := unstageSubPaths(dir); err != nil {
		return err
	}
	// A fresh writable layer for every run, as Kubernetes gives a restarted container.
	for _, d := range []string{"upper", "work", "exit", "exit.tmp", "pid", "status.json", "state.json"} {
		if err := os.RemoveAll(filepath.Join(dir, d)); err != nil {
			return err
		}
	}
	for _, d := range []string{"upper", "work", "rootfs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := m.mountRootfs(sb, dir, c.Layers); err != nil {
		return err
	}
	orig := c.Mounts
	if c.Mounts, err = stageSubPaths(dir, c.Mounts); err != nil {
		return err
	}
	if sb.UserNS != nil {
		if c.Mounts, err = idmapHostMounts(dir, sb.Dir, filepath.Join(sb.Dir, "ns", "user"), orig, c.Mounts); err != nil {
			return err
		}
	}
	c.OOMScoreAdj = max(c.OOMScoreAdj, m.minOOMScoreAdj)
	spec := buildSpec(specInput{
		Container:  c,
		CgroupPath: m.cgroupPath(sandboxID, c.Name),
		NSDir:      filepath.Join(sb.Dir, "ns"),
		ShmDir:     filepath.Join(sb.Dir, "shm"),
		EtcDir:     filepath.Join(sb.Dir, "etc"),
		UserNS:     sb.UserNS,
	})
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		return err
	}
	logPath := m.LogPath(sandboxID, c.Name)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	rid := runcID(sandboxID, c.Name)
	rt := m.runtimeOf(sandboxID)
	// A leftover runc container of this name (a crash between runc run and state.json).
	if err := m.runcDelete(ctx, rt, rid); err != nil {
		return err
	}
	st := containerState{
		RuncID:       rid,
		PodOOMKills:  max(m.cgroups.oomKills(m.cgroupPath(sandboxID, "")), 0),
		RestartCount: restarts,
	}
	run := []string{"run", "--bundle", dir, "--pid-file", filepath.Join(dir, "pid"), rid}
	if rt.name == "runc" {
		// runc keeps the container's cgroup after it exits, for its OOM-kill counter.
		run = append([]string{"run", "--keep"}, run[1:]...)
	}
	shim := exec.Command(m.sh, append([]string{"-c", shimScript, "gantry-shim", logPath, dir}, rt.command(run...)...)...)
	// Its own session, so it outlives this process and no terminal signal reaches it.
	shim.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	shim.Dir = dir
	if err := shim.Start(); err != nil {
		return fmt.Errorf("starting the shim: %w", err)
	}
	go shim.Wait() //nolint:errcheck // reaps the shim if it ends while this process lives
	st.ShimPid = shim.Process.Pid
	st.StartedAt = time.Now().UTC()
	if err := m.saveState(dir, st); err != nil {
		return err
	}
	// runc writes the pid file once the process runs; the exit file means it never did.
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(filepath.Join(dir, "pid")); err == nil {
			break
		}
		if _, err := os.Stat(filepath.Join(dir, "exit")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "pid")); err == nil {
				break // it ran and exited already
			}
			return fmt.Errorf("runc failed: %s", logTail(logPath, 1024))
		}
		select {
		case <-ctx.Done():
			_ = m.runcKill(context.WithoutCancel(ctx), rt, rid, "KILL")
			return fmt.Errorf("waiting for the process to start: %w", ctx.Err())
		case <-tick.C:
		}
	}
	m.log.Debug("container started", "sandbox", sandboxID, "container", c.Name, "restarts", restarts)
	return nil
}

// shimScript holds the runtime's `run` in the foreground and records its exit status ($?,
// which runc makes 128+signal for a killed process). Arguments: log, container dir (the
// bundle), then the runtime's command line.
const shimScript = `log=$1 dir=$2
shift 2
exec </dev/null >>"$log" 2>&1
"$@"
code=$?
echo "$code" >"$dir/exit.tmp" && mv -f "$dir/exit.tmp" "$dir/exit"
`

// mountRootfs mounts the container's root: an overlay of the layers under a fresh writable
// layer. In a sandbox with a user namespace the layers are idmapped into it first and the
// writable layer's root belongs to the pod's root, so the pod's uid 0 owns what the host's
// uid 0 owns in the image, and nothing of the host's.
func (m *Manager) mountRootfs(sb *Sandbox, dir string, layers []string) error {
	if sb.UserNS == nil {
		return mountOverlay(dir, layers)
	}
	if err := os.Chown(filepath.Join(dir, "upper"), int(sb.UserNS.HostID), int(sb.UserNS.HostID)); err != nil {
		return err
	}
	mapped, err := idmapLayers(dir, filepath.Join(sb.Dir, "ns", "user"), layers)
	if err == nil {
		err = mountOverlay(dir, mapped)
	}
	// The overlay holds private copies of its layers' mounts: these can go at once.
	return errors.Join(err, unmountAll(mapped))
}

// mountOverlay mounts dir/rootfs as an overlay of the layers (bottom first) under dir/upper.
func mountOverlay(dir string, layers []string) error {
	lower := make([]string, 0, len(layers))
	for i := len(layers) - 1; i >= 0; i-- {
		if strings.ContainsAny(layers[i], ":,") {
			return fmt.Errorf("layer %s: overlayfs cannot take a path with ':' or ','", layers[i])
		}
		lower = append(lower, layers[i])
	}
	if len(lower) == 0 {
		empty := filepath.Join(dir, "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return err
		}
		lower = append(lower, empty)
	}
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lower, ":"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
	if len(data) >= os.Getpagesize() {
		return fmt.Errorf("mounting the root filesystem: %d layers make overlay options of %d bytes, over the kernel's %d", len(layers), len(data), os.Getpagesize()-1)
	}
	if err := unix.Mount("overlay", filepath.Join(dir, "rootfs"), "overlay", 0, data); err != nil {
		return fmt.Errorf("mounting the root filesystem: %w", err)
	}
	return nil
}

func (m *Manager) saveState(dir string, st containerState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, "state.json"), b, 0o600)
}

func (m *Manager) loadState(dir string) (containerState, error) {
	var st containerState
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// ContainerStatus reports whether the container runs and, once it has ended, its exit
// code, whether it was OOM-killed (from the memory cgroup's oom_kill counters, not guessed
// from the exit code) and the reason.
func (m *Manager) ContainerStatus(ctx context.Context, sandboxID, name string) (ContainerStatus, error) {
	unlock := m.lock(sandboxID)
	defer unlock()
	st, err := m.containerStatusLocked(ctx, sandboxID, name)
	if err != nil {
		return st, fmt.Errorf("container %s in sandbox %s: %w", name, sandboxID, err)
	}
	return st, nil
}

func (m *Manager) containerStatusLocked(ctx context.Context, sandboxID, name string) (ContainerStatus, error) {
	dir := m.containerDir(sandboxID, name)
	out := ContainerStatus{Name: name}
	if b, err := os.ReadFile(filepath.Join(dir, "status.json")); err == nil {
		err := json.Unmarshal(b, &out)
		return out, err
	}
	cs, err := m.loadState(dir)
	if errors.Is(err, os.ErrNotExist) {
		return out, ErrNotFound
	}
	if err != nil {
		return out, fmt.Errorf("reading state: %w", err)
	}
	out.StartedAt, out.RestartCount = cs.StartedAt, cs.RestartCount
	pid := readInt(filepath.Join(dir, "pid"))
	if _, err := os.Stat(filepath.Join(dir, "exit")); errors.Is(err, os.ErrNotExist) {
		if pid > 0 && m.inCgroup(pid, sandboxID, name) {
			out.Running, out.Pid = true, pid
			return out, nil
		}
		// Not running and no exit status: the shim may be writing it right now.
		if !waitForFile(ctx, filepath.Join(dir, "exit"), cs.ShimPid, time.Second) {
			if pid <= 0 && processAlive(cs.ShimPid) {
				return out, nil // starting: runc has not written the pid file yet
			}
			return m.finish(dir, sandboxID, name, cs, out, exitUnknown, time.Now().UTC(), ReasonUnknown)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, "exit"))
	if err != nil {
		return out, err
	}
	return m.finish(dir, sandboxID, name, cs, out, readInt(filepath.Join(dir, "exit")), fi.ModTime().UTC(), "")
}

// finish records how a run ended in status.json, which from then on answers for it. It must
// run before the container's cgroup goes (runc delete), which holds the OOM-kill counter.
func (m *Manager) finish(dir, sandboxID, name string, cs containerState, out ContainerStatus, code int, at time.Time, reason string) (ContainerStatus, error) {
	out.ExitCode, out.FinishedAt = code, at
	// The kill counts in the cgroup whose limit was hit: the container's own, or the pod's
	// (then the container counts as OOM-killed if SIGKILL ended it).
	own := m.cgroups.oomKills(m.cgroupPath(sandboxID, name))
	pod := m.cgroups.oomKills(m.cgroupPath(sandboxID, ""))
	out.OOMKilled = own > 0 || (code == 128+int(unix.SIGKILL) && pod > cs.PodOOMKills)
	switch {
	case reason != "":
		out.Reason = reason
	case out.OOMKilled:
		out.Reason = ReasonOOMKilled
	case code == 0:
		out.Reason = ReasonCompleted
	default:
		out.Reason = ReasonError
	}
	b, err := json.Marshal(out)
	if err != nil {
		return out, err
	}
	return out, atomicfile.Write(filepath.Join(dir, "status.json"), b, 0o600)
}

// inCgroup reports whether pid is a process in the container's cgroup (so a recycled pid is
// not taken for the container).
func (m *Manager) inCgroup(pid int, sandboxID, name string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return false
	}
	want := ":" + m.cgroupPath(sandboxID, name)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, ":memory:") && strings.HasSuffix(line, want) {
			return true
		}
	}
	return false
}

func processAlive(pid int) bool {
	return pid > 0 && unix.Kill(pid, 0) == nil
}

// waitForFile waits up to d for path to appear while the shim lives.
func waitForFile(ctx context.Context, path string, shimPid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(path); err == nil {
			return true
		}
		if !processAlive(shimPid) || time.Now().After(deadline) || ctx.Err() != nil {
			_, err := os.Stat(path)
			return err == nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readInt(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	return n
}

// logTail returns up to n bytes from the end of a log, for error messages.
func logTail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log)"
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "(no log)"
	}
	off := max(fi.Size()-n, 0)
	b := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return "(no log)"
	}
	return strings.TrimSpace(string(b))
}

// StopContainer stops a container: SIGTERM, up to grace for it to exit, then SIGKILL. It
// then records the exit status, deletes the runc container and unmounts its root
// filesystem; the log and the writable layer stay until the sandbox is removed. Stopping a
// container that has already exited only does the cleanup.
func (m *Manager) StopContainer(ctx context.Context, sandboxID, name string, grace time.Duration) error {
	unlock := m.lock(sandboxID)
	defer unlock()
	if _, err := os.Stat(m.containerDir(sandboxID, name)); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stopping container %s in sandbox %s: %w", name, sandboxID, ErrNotFound)
	}
	if err := m.stopContainerLocked(ctx, sandboxID, name, grace); err != nil {
		return fmt.Errorf("stopping container %s in sandbox %s: %w", name, sandboxID, err)
	}
	return nil
}

// SignalContainer sends sig to the container's process (runc kill) and returns at once; a
// container that has already exited is left as it is. It lets a caller signal several
// containers of one sandbox together and choose when to kill: StopContainer with a zero grace
// then kills what still runs and cleans up, and RemoveSandbox kills everything.
func (m *Manager) SignalContainer(ctx context.Context, sandboxID, name string, sig syscall.Signal) error {
	unlock := m.lock(sandboxID)
	defer unlock()
	if _, err := os.Stat(m.containerDir(sandboxID, name)); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("signalling container %s in sandbox %s: %w", name, sandboxID, ErrNotFound)
	}
	if err := m.runcKill(ctx, m.runtimeOf(sandboxID), runcID(sandboxID, name), unix.SignalName(sig)); err != nil {
		return fmt.Errorf("signalling container %s in sandbox %s: %w", name, sandboxID, err)
	}
	return nil
}

func (m *Manager) stopContainerLocked(ctx context.Context, sandboxID, name string, grace time.Duration) error {
	dir := m.containerDir(sandboxID, name)
	rid := runcID(sandboxID, name)
	rt := m.runtimeOf(sandboxID)
	st, err := m.containerStatusLocked(ctx, sandboxID, name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if st.Running {
		cs, _ := m.loadState(dir)
		if grace > 0 {
			if err := m.runcKill(ctx, rt, rid, "TERM"); err != nil {
				return err
			}
			waitForFile(ctx, filepath.Join(dir, "exit"), cs.ShimPid, grace)
		}
		if _, err := os.Stat(filepath.Join(dir, "exit")); err != nil {
			if err := m.runcKill(ctx, rt, rid, "KILL"); err != nil {
				return err
			}
			if !waitForFile(ctx, filepath.Join(dir, "exit"), cs.ShimPid, 10*time.Second) {
				return errors.New("the process did not exit within 10s of SIGKILL")
			}
		}
		if _, err := m.containerStatusLocked(ctx, sandboxID, name); err != nil {
			return err
		}
	}
	if err := m.runcDelete(ctx, rt, rid); err != nil {
		return err
	}
	// runc delete removes the container's cgroup; one left by a runc that died is removed here.
	if err := m.cgroups.remove(m.cgroupPath(sandboxID, name)); err != nil {
		return err
	}
	if err := unstageSubPaths(dir); err != nil {
		return err
	}
	return unmount(filepath.Join(dir, "rootfs"))
}

// Exec runs argv in a running container (runc exec: the container's namespaces, cgroup,
// user, environment and security settings) and returns its exit code. With tty the process
// gets a terminal whose output (stdout and stderr together) goes to stdout; stderr is then
// unused. It is bounded by ctx only: a command may run as long as its caller wants.
func (m *Manager) Exec(ctx context.Context, sandboxID, name string, argv []string, stdin io.Reader, stdout, stderr io.Writer, tty bool) (int, error) {
	if len(argv) == 0 {
		return -1, fmt.Errorf("exec in container %s of sandbox %s: argv: must not be empty", name, sandboxID)
	}
	st, err := m.ContainerStatus(ctx, sandboxID, name)
	if err != nil {
		return -1, fmt.Errorf("exec: %w", err)
	}
	if !st.Running {
		return -1, fmt.Errorf("exec in container %s of sandbox %s: not running", name, sandboxID)
	}
	args := []string{"exec"}
	if tty {
		args = append(args, "--tty")
	}
	args = append(args, runcID(sandboxID, name))
	args = m.runtimeOf(sandboxID).command(append(args, argv...)...)
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	if tty {
		err = runWithTTY(cmd, stdin, stdout)
	} else {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
		err = cmd.Run()
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.ExitCode(), nil
	}
	if err != nil {
		return -1, fmt.Errorf("exec in container %s of sandbox %s: %w", name, sandboxID, err)
	}
	return 0, nil
}

// runWithTTY runs cmd (runc exec --tty) with a pseudo-terminal as its stdio, relaying stdin
// to it and its output to stdout until runc exits.
func runWithTTY(cmd *exec.Cmd, stdin io.Reader, stdout io.Writer) error {
	master, slave, err := openPTY()
	if err != nil {
		return err
	}
	defer master.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err = cmd.Start()
	slave.Close()
	if err != nil {
		return err
	}
	if stdin != nil {
		go io.Copy(master, stdin) //nolint:errcheck // ends when the terminal closes
	}
	if stdout == nil {
		stdout = io.Discard
	}
	// Reading the master ends with EIO once runc, the last holder of the slave, exits.
	_, _ = io.Copy(stdout, master)
	return cmd.Wait()
}
