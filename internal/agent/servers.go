package agent

import (
	"context"
	"log/slog"

	"k8s.io/client-go/kubernetes"

	"github.com/gantry-run/gantry/internal/apiservers"
	"github.com/gantry-run/gantry/internal/loadbalancer"
)

// serverLearner keeps an agent's load balancer's servers up to date with the cluster's: every
// apiservers.Interval it reads the kubernetes EndpointSlice in default and gives its servers
// to the load balancer, which tries them after the ones the agent was given. Each new list is
// kept in file (<data-dir>/api-servers), which the agent's next start reads.
type serverLearner struct {
	client kubernetes.Interface
	lb     *loadbalancer.LoadBalancer
	file   string
	log    *slog.Logger
}

func (l *serverLearner) Start(ctx context.Context) error {
	apiservers.Follow(ctx, l.client, l.log, func(servers []string) {
		if l.lb.SetLearned(servers) {
			if err := apiservers.WriteFile(l.file, servers); err != nil {
				l.log.Warn("keeping the API servers' list", "path", l.file, "err", err)
			}
		}
	})
	return nil
}
