package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Runtimes a sandbox's containers run under (PodSpec.Runtime).
const (
	// RuntimeRunc is runc: the host's kernel, behind namespaces, cgroups, capabilities and
	// seccomp. The default.
	RuntimeRunc = ""
	// RuntimeRunsc is gVisor's runsc: a user-space kernel (the Sentry) between the container
	// and the host's, for pods that need a kernel boundary.
	RuntimeRunsc = "runsc"
)

// ociRuntime is how one OCI runtime is run: its binary and the flags every command takes
// (its state directory first).
type ociRuntime struct {
	name   string
	bin    string
	global []string
}

// command is the argv of one of the runtime's commands.
func (r ociRuntime) command(args ...string) []string {
	return append(append([]string{r.bin}, r.global...), args...)
}

// runtimes are the runtimes this manager can run: runc always, runsc when installed.
func (m *Manager) runtimes() []ociRuntime {
	out := []ociRuntime{m.runcRT}
	if m.runscRT.bin != "" {
		out = append(out, m.runscRT)
	}
	return out
}

// runtimeOf is the runtime of sandbox id's containers, runc when its record says none (or
// is unreadable: a sandbox left half-made).
func (m *Manager) runtimeOf(id string) ociRuntime {
	if sb, err := m.loadSandbox(id); err == nil && sb.Spec.Runtime == RuntimeRunsc {
		return m.runscRT
	}
	return m.runcRT
}

// runcCmd runs one bounded command of runtime rt and returns its stdout; a failure quotes
// stderr.
func (m *Manager) runcCmd(ctx context.Context, rt ociRuntime, args ...string) ([]byte, error) {
	ctx, cancel := withTimeout(ctx, runcTimeout)
	defer cancel()
	argv := rt.command(args...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2048 {
			msg = msg[:2048] + "…"
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", filepath.Base(rt.bin), args[0], err, msg)
	}
	return stdout.Bytes(), nil
}

// runcKill sends sig to the container's init; a container that is gone or stopped is fine.
func (m *Manager) runcKill(ctx context.Context, rt ociRuntime, id, sig string) error {
	_, err := m.runcCmd(ctx, rt, "kill", id, sig)
	if err != nil && (strings.Contains(err.Error(), "does not exist") || strings.Contains(err.Error(), "not running") || strings.Contains(err.Error(), "process already finished")) {
		return nil
	}
	return err
}

// runcDelete removes the container from runc (and with it the container's cgroup); a
// container runc does not know is fine.
func (m *Manager) runcDelete(ctx context.Context, rt ociRuntime, id string) error {
	_, err := m.runcCmd(ctx, rt, "delete", "--force", id)
	if err != nil && (strings.Contains(err.Error(), "does not exist") || strings.Contains(err.Error(), "not found")) {
		return nil
	}
	return err
}

// runcList returns the IDs of runc's containers that start with prefix; errors mean none.
func (m *Manager) runcList(ctx context.Context, rt ociRuntime, prefix string) []string {
	out, err := m.runcCmd(ctx, rt, "list", "--format", "json")
	if err != nil {
		return nil
	}
	var list []struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(out, &list) != nil {
		return nil
	}
	var ids []string
	for _, c := range list {
		if strings.HasPrefix(c.ID, prefix) {
			ids = append(ids, c.ID)
		}
	}
	return ids
}
