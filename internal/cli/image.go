package cli

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/qpbin"
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
			if err := checkUser(user); err != nil {
				return err
			}
			return pushBinary(cmd, args[0], args[1], user)
		},
	}
	wrap.Flags().StringVar(&user, "user", "", "user the image runs as: a uid, or uid:gid (default root)")
	cmd.AddCommand(wrap)
	var qpUser string
	qp := &cobra.Command{
		Use: "queue-proxy REF",
		Example: `  # The queue-proxy image for cluster mode (gantry install --queue-proxy-image)
  gantry image queue-proxy 127.0.0.1:5000/gantry-system/queue-proxy`,
		Short: "Push the queue-proxy binary this gantry carries as a one-layer image to REF",
		Long: `Wrap the queue-proxy's own binary, which this gantry carries (make build puts it in), into
a one-layer image whose entrypoint it is and push it to REF. "gantry install
--queue-proxy-image" runs every revision's queue-proxy from it: it starts in a few
milliseconds, where the gantry binary first initializes for about 80 ms, and uses about a
fifth of the gantry binary's memory.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkUser(qpUser); err != nil {
				return err
			}
			if uid, _, _ := strings.Cut(qpUser, ":"); uid == "" || strings.Trim(uid, "0") == "" {
				return fmt.Errorf("--user: %q: the queue-proxy container runs as a user other than root (runAsNonRoot)", qpUser)
			}
			dir, err := os.MkdirTemp("", "gantry-queue-proxy-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(dir)
			bin, err := qpbin.Install(dir)
			if err != nil {
				return err
			}
			if bin == "" {
				return errors.New("this gantry carries no queue-proxy binary: build it with make build (hack/build.sh), or run the queue-proxies from the gantry image itself (gantry install without --queue-proxy-image)")
			}
			return pushBinary(cmd, bin, args[0], qpUser)
		},
	}
	// The queue-proxy container must not run as root (runAsNonRoot).
	qp.Flags().StringVar(&qpUser, "user", "65532", "user the image runs as: a uid, or uid:gid; not root, which the queue-proxy container refuses")
	cmd.AddCommand(qp)
	return cmd
}

// checkUser refuses a --user that is not a uid or uid:gid.
func checkUser(user string) error {
	if user == "" {
		return nil
	}
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
	return nil
}

// pushBinary wraps the static binary bin into a one-layer image run as user, pushes it to
// ref and prints the pushed reference by digest.
func pushBinary(cmd *cobra.Command, bin, ref, user string) error {
	digest, err := image.PushBinary(cmd.Context(), bin, ref, user)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s@%s\n", ref, digest)
	return nil
}
