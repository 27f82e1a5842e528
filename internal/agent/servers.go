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
// to the load balancer, which tries them after the ones the agent was given.
type serverLearner struct {
	client kubernetes.Interface
	lb     *loadbalancer.LoadBalancer
	log    *slog.Logger
}

func (l *serverLearner) Start(ctx context.Context) error {
	apiservers.Follow(ctx, l.client, l.log, func(servers []string) { l.lb.SetLearned(servers) })
	return nil
}
