package cli

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/gantry-run/gantry/internal/queue"
	"github.com/gantry-run/gantry/internal/sched"
	"github.com/gantry-run/gantry/internal/tracing"
)

func newQueueProxyCommand() *cobra.Command {
	return &cobra.Command{
		Use: "queue-proxy",
		Example: `  # Run by the serverless node inside each revision pod, configured by its environment
  # (QUEUE_SERVING_PORT, USER_PORT, CONTAINER_CONCURRENCY, …); not for use by hand.
  gantry queue-proxy`,
		Short:  "Run the queue-proxy of a revision's pod (started by the serverless node)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := queue.ConfigFromEnv(os.Getenv)
			if err != nil {
				return err
			}
			// JSON, as Knative's queue-proxy logs: a line about a request carries its
			// trace_id and span_id beside the revision and the pod.
			log, err := tracing.NewLogger(os.Stderr, tracing.LogJSON, slog.LevelInfo)
			if err != nil {
				return err
			}
			log = log.With("revision", cfg.Namespace+"/"+cfg.Revision, "pod", cfg.Pod)
			// A relay: batch, as gantry server's gateway (internal/sched). A pod whose
			// seccomp profile forbids it keeps the default policy, and says so.
			if err := sched.Apply(0, sched.Batch); err != nil {
				log.Warn("scheduling policy batch not applied; the queue-proxy runs with the default policy", "err", err)
			}
			// SIGTERM starts the drain; the node sends it to the queue-proxy first and to the
			// user containers only once it has exited.
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return queue.Run(ctx, cfg, log)
		},
	}
}
