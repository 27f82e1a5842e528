package lifecycle

import (
	"context"
	"time"
)

// The leases the servers of a cluster elect their leaders by (the controller-manager's, the
// scheduler's, the serving controllers'): a little longer than Kubernetes' defaults (15 s,
// 10 s), so that the pause in writes while etcd elects a new leader after a server dies does
// not cost a surviving leader its lease.
const (
	LeaseDuration = 20 * time.Second
	RenewDeadline = 15 * time.Second
	RetryPeriod   = 2 * time.Second
)

// OnEveryServer is a controller-runtime runnable that runs on every server of a cluster, the
// elected leader or not: the request path (gateway, activator, DNS) serves on each, while the
// controllers that write act on the leader only.
type OnEveryServer func(ctx context.Context) error

// Start runs f.
func (f OnEveryServer) Start(ctx context.Context) error { return f(ctx) }

// NeedLeaderElection is false: every server runs it.
func (OnEveryServer) NeedLeaderElection() bool { return false }
