package cli

import "github.com/spf13/cobra"

// knCommands are the commands that manage Knative Services as kn does, and deploy, call and
// watch them.
func knCommands() []*cobra.Command {
	return []*cobra.Command{
		newServiceCommand(), newRevisionCommand(), newRouteCommand(),
		newDeployCommand(), newInvokeCommand(), newLogsCommand(), newTopCommand(),
		newCompletionCommand(),
	}
}
