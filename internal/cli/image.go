package cli

import (
	"fmt"
	"strconv"
	"strings"

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
	var user string
	wrap := &cobra.Command{
		Use: "wrap FILE REF",
		Example: `  # The gantry image for cluster mode: this gantry binary, as a non-root user
  gantry image wrap "$(command -v gantry)" 127.0.0.1:5000/gantry-system/gantry --user 65532`,
		Short: "Wrap a static Linux binary into a one-layer image and push it to REF",
		Long: `Wrap the static Linux binary FILE into a one-layer image whose entrypoint it is (at
/app, as "gantry image build" makes them) and push it to REF. Wrapping gantry itself gives the
image "gantry install" runs the serving stack and the queue-proxies from.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if user != "" {
				uid, gid, hasGID := strings.Cut(user, ":")
				ids := []string{uid}
				if hasGID {
					ids = append(ids, gid)
				}
				for _, id := range ids {
					if _, err := strconv.ParseUint(id, 10, 32); err != nil {
						return fmt.Errorf("--user: %q is not a uid or uid:gid", user)
					}
				}
			}
			digest, err := image.PushBinary(cmd.Context(), args[0], args[1], user)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s@%s\n", args[1], digest)
			return nil
		},
	}
	wrap.Flags().StringVar(&user, "user", "", "user the image runs as: a uid, or uid:gid (default root)")
	cmd.AddCommand(wrap)
	return cmd
}
