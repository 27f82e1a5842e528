package cli

import (
	"context"
	"errors"
	"fmt"
	"go/build"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gantry-run/gantry/internal/image"
	"github.com/gantry-run/gantry/internal/kn"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// defaultRegistry is gantry server's embedded registry.
const defaultRegistry = "127.0.0.1:5000"

func newDeployCommand() *cobra.Command {
	var conn connFlags
	var gw gatewayFlags
	var f serviceFlags
	var name, registry string
	cmd := &cobra.Command{
		Use:   "deploy [DIR]",
		Short: "Build the Go program in DIR into an image, push it and run it as a Service",
		Long: `Build the Go main package in DIR (default .) into a minimal image (the static binary
alone, no Dockerfile), push it to the embedded registry (or --registry), and create or update
the Service named after the directory (or --name) to run it. It waits until the new revision
serves and prints its URL.

Unchanged source builds the same image digest: the service is left as it is and no new
revision is made.`,
		Example: `  gantry deploy samples/hello
  gantry deploy . --name api --env TARGET=Gantry
  curl "$(gantry deploy samples/hello)"`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			return deploy(cmd, &conn, &gw, &f, dir, name, registry)
		},
	}
	conn.addFlags(cmd)
	gw.addFlags(cmd)
	f.addFlags(cmd, deployFlags)
	def := os.Getenv("GANTRY_REGISTRY")
	if def == "" {
		def = defaultRegistry
	}
	cmd.Flags().StringVar(&name, "name", "", "service name (default: the directory's name)")
	cmd.Flags().StringVar(&registry, "registry", def, "registry to push the image to, host:port[/path] ($GANTRY_REGISTRY)")
	return cmd
}

func deploy(cmd *cobra.Command, conn *connFlags, gw *gatewayFlags, f *serviceFlags, dir, name, registry string) error {
	start := time.Now()
	ctx := ctxOf(cmd)
	opts, err := f.options(cmd)
	if err != nil {
		return err
	}
	if err := checkGoMain(dir); err != nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if name == "" {
		if name, err = kn.ServiceNameFor(abs); err != nil {
			return err
		}
	} else if err := kn.ValidateServiceName(name); err != nil {
		return fmt.Errorf("--name: %w", err)
	}
	k, err := conn.connect()
	if err != nil {
		return err
	}
	existing := &servingv1.Service{}
	if err := k.Get(ctx, types.NamespacedName{Namespace: k.namespace, Name: name}, existing); apierrors.IsNotFound(err) {
		existing = nil
	} else if err != nil {
		return apiError(err, k.host)
	}
	ref := strings.TrimSuffix(registry, "/") + "/" + k.namespace + "/" + name
	if err := checkRegistry(ctx, registry); err != nil {
		return err
	}

	stderr := cmd.ErrOrStderr()
	p := newProgress(stderr, start)
	p.header("Deploying %s as service '%s' in namespace '%s':", dir, name, k.namespace)
	digest, err := buildImage(ctx, abs, ref)
	if err != nil {
		return err
	}
	p.say(fmt.Sprintf("Image %s pushed.", kn.ShortDigest(digest)))
	opts.Image = ref + "@" + digest

	if existing != nil {
		if rev, _ := k.getRevision(ctx, existing.Status.LatestReadyRevisionName); kn.Unchanged(existing, rev, digest) && opts.Env.Empty() &&
			opts.Annotations.Empty() && opts.Port == nil && opts.ConcurrencyLimit == nil && opts.ScaleMin == nil && opts.ScaleMax == nil {
			p.say(fmt.Sprintf("Unchanged: revision %s already runs this image.", rev.Name))
			if f.out.machine() {
				return f.out.print(cmd.OutOrStdout(), existing)
			}
			fmt.Fprintf(stderr, "\nService '%s' is available at URL:\n", name)
			fmt.Fprintln(cmd.OutOrStdout(), gw.printer().URL(existing.Status.URL))
			return nil
		}
		svc, before, err := k.updateService(ctx, name, func(s *servingv1.Service) error { return kn.ApplyServiceOptions(s, opts) })
		if err != nil {
			return err
		}
		return k.finishRollout(cmd, gw, f, svc, before, p)
	}
	svc, err := kn.NewService(k.namespace, name, opts)
	if err != nil {
		return err
	}
	if err := k.Create(ctx, svc); err != nil {
		return fmt.Errorf("creating service %s: %w", name, apiError(err, k.host))
	}
	return k.finishRollout(cmd, gw, f, svc, nil, p)
}

// checkGoMain refuses a directory that holds no Go main package, before anything is built.
func checkGoMain(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("%s: no such directory", dir)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s: not a directory", dir)
	}
	pkg, err := build.ImportDir(dir, 0)
	var noGo *build.NoGoError
	switch {
	case errors.As(err, &noGo):
		return fmt.Errorf("%s: no Go program here (no .go files; gantry deploy builds a Go main package)", dir)
	case err != nil:
		return fmt.Errorf("%s: %s", dir, oneLine(err.Error()))
	case pkg.Name != "main":
		return fmt.Errorf("%s: package %s is not a program (gantry deploy builds a Go main package)", dir, pkg.Name)
	}
	return nil
}

// checkRegistry makes sure a registry answers before anything is built; only loopback
// registries (the embedded one) are checked, others may need credentials to answer.
func checkRegistry(ctx context.Context, registry string) error {
	host, _, _ := strings.Cut(registry, "/")
	if !image.IsLoopbackRegistry(host) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/v2/", nil)
	if err != nil {
		return fmt.Errorf("--registry %s: %w", registry, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("no registry answers at %s (is gantry server running? --registry names another)", host)
	}
	resp.Body.Close()
	return nil
}

// buildImage builds and pushes the image; a refused push is one line.
func buildImage(ctx context.Context, dir, ref string) (string, error) {
	// A program outside any module (no go.mod above it) builds as a plain directory.
	if !inModule(dir) && os.Getenv("GO111MODULE") == "" {
		_ = os.Setenv("GO111MODULE", "off")
		defer func() { _ = os.Unsetenv("GO111MODULE") }()
	}
	h, err := image.BuildGoImage(ctx, dir, ref)
	if err != nil {
		msg := err.Error()
		if i := strings.Index(msg, "pushing "); i >= 0 && !strings.Contains(msg, "go build:") {
			return "", fmt.Errorf("the registry refused the image: %s", oneLine(msg[i:]))
		}
		return "", err
	}
	return h.String(), nil
}

func inModule(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return true
		}
		if filepath.Dir(d) == d {
			return false
		}
	}
}

// oneLine joins a message's lines.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
