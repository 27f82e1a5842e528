package agent

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gantry-run/gantry/internal/loadbalancer"
)

// learnInterval is how often the agent reads the API servers' EndpointSlice: the API servers
// rewrite it every 10 s (and drop a server whose lease in etcd expired, 15 s after it stopped).
const learnInterval = 10 * time.Second

// APIServersSlice is the EndpointSlice, in default, in which the API servers list themselves:
// the kubernetes Service's.
const APIServersSlice = "kubernetes"

// apiServers are the host:port addresses of the API servers a kubernetes EndpointSlice lists:
// the ready endpoints' addresses (a missing condition counts as ready) on the port named https,
// else the slice's first port. A slice without a port lists none.
func apiServers(slice *discoveryv1.EndpointSlice) []string {
	var port int32
	for _, p := range slice.Ports {
		if p.Port == nil {
			continue
		}
		if port == 0 || (p.Name != nil && *p.Name == "https") {
			port = *p.Port
		}
	}
	if port == 0 {
		return nil
	}
	var out []string
	for _, e := range slice.Endpoints {
		if e.Conditions.Ready != nil && !*e.Conditions.Ready {
			continue
		}
		for _, a := range e.Addresses {
			if net.ParseIP(a) == nil {
				continue
			}
			out = append(out, net.JoinHostPort(a, strconv.Itoa(int(port))))
		}
	}
	return out
}

// serverLearner keeps an agent's load balancer's servers up to date with the cluster's: every
// learnInterval it reads the kubernetes EndpointSlice in default and gives its servers to the
// load balancer, which tries them after the ones the agent was given.
type serverLearner struct {
	client kubernetes.Interface
	lb     *loadbalancer.LoadBalancer
	log    *slog.Logger
}

func (l *serverLearner) Start(ctx context.Context) error {
	t := time.NewTicker(learnInterval)
	defer t.Stop()
	failing := false
	for {
		if err := l.learn(ctx); err != nil && ctx.Err() == nil {
			// Said once until it works again: the servers known stay in use meanwhile.
			if !failing {
				l.log.Warn("reading the API servers' EndpointSlice", "err", err)
			}
			failing = true
		} else {
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// learn reads the slice once and hands its servers to the load balancer.
func (l *serverLearner) learn(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, learnInterval)
	defer cancel()
	slice, err := l.client.DiscoveryV1().EndpointSlices("default").Get(ctx, APIServersSlice, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if servers := apiServers(slice); len(servers) > 0 {
		l.lb.SetLearned(servers)
	}
	return nil
}
