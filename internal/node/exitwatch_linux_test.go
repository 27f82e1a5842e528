package node

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

func TestWatchExit(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep to watch: %v", err)
	}
	exited := make(chan struct{})
	if !watchExit(context.Background(), cmd.Process.Pid, func() { close(exited) }) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Skip("pidfd not supported here")
	}
	select {
	case <-exited:
		t.Fatal("reported an exit of a running process")
	case <-time.After(50 * time.Millisecond):
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("exit not reported within 5s")
	}
}

func TestWatchExitAlreadyGone(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Skipf("no true to watch: %v", err)
	}
	pid := cmd.Process.Pid
	// Exited but not reaped: the pidfd opens and is readable at once.
	time.Sleep(100 * time.Millisecond)
	exited := make(chan struct{})
	ok := watchExit(context.Background(), pid, func() { close(exited) })
	_ = cmd.Wait()
	if !ok {
		t.Skip("pidfd not supported here")
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("exit of a process that had already ended not reported")
	}
}

func TestWatchExitEndsWithContext(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep to watch: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	ctx, cancel := context.WithCancel(context.Background())
	called := make(chan struct{}, 1)
	if !watchExit(ctx, cmd.Process.Pid, func() { called <- struct{}{} }) {
		t.Skip("pidfd not supported here")
	}
	cancel()
	time.Sleep(50 * time.Millisecond)
	_ = cmd.Process.Kill()
	select {
	case <-called:
		t.Fatal("exit reported after the watch's context ended")
	case <-time.After(200 * time.Millisecond):
	}
}
