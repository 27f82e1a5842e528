package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newCompletionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print the shell completion script for bash, zsh or fish",
		Long: `Print a script that completes gantry's commands, flags and arguments in your shell.
Load it in the current shell, or install it where the shell looks at startup.`,
		Example: `  source <(gantry completion bash)
  gantry completion bash > /etc/bash_completion.d/gantry
  gantry completion zsh > "${fpath[1]}/_gantry"
  gantry completion fish > ~/.config/fish/completions/gantry.fish`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"bash", "zsh", "fish"},
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			}
			return fmt.Errorf("completion %s: want bash, zsh or fish", args[0])
		},
	}
}
