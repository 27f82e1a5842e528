package cli

import (
	"github.com/spf13/cobra"

	"github.com/gantry-run/gantry/internal/queue"
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
			return queue.Main(cmd.Context())
		},
	}
}
