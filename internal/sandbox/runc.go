package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
)

// runcCmd runs one bounded runc command and returns its stdout; a failure quotes stderr.
func (m *Manager) runcCmd(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := withTimeout(ctx, runcTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.runc, append([]string{"--root", m.opts.RuncRoot}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2048 {
			msg = msg[:2048] + "…"
		}
		return stdout.Bytes(), fmt.Errorf("runc %s: %w: %s", args[0], err, msg)
	}
	return stdout.Bytes(), nil
}

// runcKill sends sig to the container's init; a container that is gone or stopped is fine.
func (m *Manager) runcKill(ctx context.Context, id, sig string) error {
	_, err := m.runcCmd(ctx, "kill", id, sig)
	if err != nil && (strings.Contains(err.Error(), "does not exist") || strings.Contains(err.Error(), "not running") || strings.Contains(err.Error(), "process already finished")) {
		return nil
	}
	return err
}

// runcDelete removes the container from runc (and with it the container's cgroup); a
// container runc does not know is fine.
func (m *Manager) runcDelete(ctx context.Context, id string) error {
	_, err := m.runcCmd(ctx, "delete", "--force", id)
	if err != nil && strings.Contains(err.Error(), "does not exist") {
		return nil
	}
	return err
}

// runcList returns the IDs of runc's containers that start with prefix; errors mean none.
func (m *Manager) runcList(ctx context.Context, prefix string) []string {
	out, err := m.runcCmd(ctx, "list", "--format", "json")
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
