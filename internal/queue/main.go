package queue

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/gantry-run/gantry/internal/sched"
	"github.com/gantry-run/gantry/internal/tracing"
)

// Main is the queue-proxy process, for both `gantry queue-proxy` and the queue-proxy's own
// binary (cmd/gantry-queue-proxy): configured by its environment, it serves until SIGTERM or
// SIGINT, then drains.
func Main(ctx context.Context) error {
	cfg, err := ConfigFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	// JSON, as Knative's queue-proxy logs: a line about a request carries its trace_id and
	// span_id beside the revision and the pod.
	log, err := tracing.NewLogger(os.Stderr, tracing.LogJSON, slog.LevelInfo)
	if err != nil {
		return err
	}
	log = log.With("revision", cfg.Namespace+"/"+cfg.Revision, "pod", cfg.Pod)
	// A relay: batch, as gantry server's gateway (internal/sched). A pod whose seccomp profile
	// forbids it keeps the default policy, and says so.
	if err := sched.Apply(0, sched.Batch); err != nil {
		log.Warn("scheduling policy batch not applied; the queue-proxy runs with the default policy", "err", err)
	}
	// SIGTERM starts the drain; the node sends it to the queue-proxy first and to the user
	// containers only once it has exited.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return Run(ctx, cfg, log)
}
