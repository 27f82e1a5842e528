package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gantry-run/gantry/internal/image"
)

func newImageCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "image",
		Example: `  gantry image build ./test/images/hello 127.0.0.1:5000/hello`,
		Short:   "Build and push container images",
	}
	cmd.AddCommand(&cobra.Command{
		Use: "build DIR REF",
		Example: `  gantry image build ./test/images/hello 127.0.0.1:5000/hello
  gantry image build samples/hello 127.0.0.1:5000/default/hello`,
		Short: "Build the Go main package in DIR into a one-layer image and push it to REF",
		Long: `Build the Go main package in DIR (statically, with the go toolchain) into an image
whose entrypoint is the program, and push it to REF, e.g. to the embedded registry:

  gantry image build ./test/images/hello 127.0.0.1:5000/hello`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			digest, err := image.BuildGoImage(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s@%s\n", args[1], digest)
			return nil
		},
	})
	return cmd
}
