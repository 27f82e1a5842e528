// Command gantry-queue-proxy is the queue-proxy alone, as `gantry queue-proxy` runs it, in a
// binary of its own that starts in a few milliseconds: gantry's own binary spends about 100 ms
// initializing the Kubernetes packages it links, and every cold start waits for the
// queue-proxy. hack/build.sh builds it and puts it inside the gantry binary
// (internal/qpbin), which installs it where the serverless node binds it into pods. The node
// runs it as `/gantry queue-proxy`, the same command line as the gantry binary. In cluster
// mode, `gantry image queue-proxy` wraps it into an image whose entrypoint it is, and the
// queue-proxy container passes it the same argument.
package main

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/gantry-run/gantry/internal/queue"
	"github.com/gantry-run/gantry/internal/queue/contract"
)

func main() {
	if !slices.Equal(os.Args[1:], contract.Args) {
		fmt.Fprintf(os.Stderr, "usage: %s queue-proxy (run by the serverless node inside each revision pod, configured by its environment)\n", os.Args[0])
		os.Exit(2)
	}
	if err := queue.Main(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "gantry: %v\n", err)
		os.Exit(1)
	}
}
