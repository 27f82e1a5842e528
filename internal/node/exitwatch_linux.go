package node

import (
	"context"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// watchExit calls exited once the process pid has ended, unless ctx ends first. It watches a
// pidfd through the runtime's poller, so a watched process costs a blocked goroutine and no
// polling. It reports false when it cannot watch (no pidfd support, or no such process): the
// caller then looks for itself.
func watchExit(ctx context.Context, pid int, exited func()) bool {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	// A file the poller cannot watch takes no deadline: then do not watch at all.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		_ = f.Close()
		return false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return false
	}
	go func() {
		// Closing the file ends the wait when ctx ends first.
		stop := context.AfterFunc(ctx, func() { _ = f.Close() })
		defer stop()
		err := rc.Read(func(fd uintptr) bool {
			// A pidfd is readable once its process has exited. Look first: the poller reports
			// only changes after the wait begins.
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			for {
				n, err := unix.Poll(fds, 0)
				if err == unix.EINTR {
					continue
				}
				return err != nil || (n > 0 && fds[0].Revents != 0)
			}
		})
		if ctx.Err() == nil {
			_ = f.Close()
		}
		if err == nil {
			exited()
		}
	}()
	return true
}
