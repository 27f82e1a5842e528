package node

import (
	"context"
	"io"
	"syscall"
	"time"

	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/sandbox"
)

// Sandboxes is what the node needs of the sandbox manager (*sandbox.Manager): the calls a
// worker makes for its pod, and the listing, logs and exec the node serves.
type Sandboxes interface {
	CreateSandbox(ctx context.Context, spec sandbox.PodSpec) (*sandbox.Sandbox, error)
	RemoveSandbox(ctx context.Context, sandboxID string) error
	Sandboxes(ctx context.Context) ([]sandbox.SandboxInfo, error)
	VolumeDir(sandboxID, name string) (string, error)
	StorageUsage(sandboxID string) (int64, error)
	ReleaseStorage(sandboxID string) error
	RotateLogs(maxBytes int64, maxFiles int) error
	StartContainer(ctx context.Context, sandboxID string, c sandbox.ContainerSpec) error
	StartContainers(ctx context.Context, sandboxID string, cs []sandbox.ContainerSpec) []error
	ContainerStatus(ctx context.Context, sandboxID, name string) (sandbox.ContainerStatus, error)
	SignalContainer(ctx context.Context, sandboxID, name string, sig syscall.Signal) error
	StopContainer(ctx context.Context, sandboxID, name string, grace time.Duration) error
	Exec(ctx context.Context, sandboxID, name string, argv []string, stdin io.Reader, stdout, stderr io.Writer, tty bool) (int, error)
	LogPath(sandboxID, name string) string
}

// Images is what the node needs of the image store (*image.Store).
type Images interface {
	Pull(ctx context.Context, ref string) (*image.Image, error)
	GC(ctx context.Context, inUse []string) (image.GCResult, error)
}

var (
	_ Sandboxes = (*sandbox.Manager)(nil)
	_ Images    = (*image.Store)(nil)
)
