package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/gantry-run/gantry/internal/lifecycle"
)

// runElected runs fn while this server holds the Lease kube-system/name, as the servers of a
// cluster run the controller-manager and the scheduler: one at a time.
//
// Gantry elects for them instead of their own --leader-elect, which ends the process when the
// lease is lost or given up (os.Exit in their callbacks): here a stop hands the lease over and
// returns, and a lost lease is this component's failure, which stops the server cleanly (as
// the components' own exit would, for their supervisor to restart them).
func runElected(ctx context.Context, cfg *rest.Config, name string, fn func(ctx context.Context) error) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	id, err := leaseIdentity()
	if err != nil {
		return err
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceSystem},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	electCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var runErr error
	started, done := make(chan struct{}), make(chan struct{})
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		Name:            name,
		LeaseDuration:   lifecycle.LeaseDuration,
		RenewDeadline:   lifecycle.RenewDeadline,
		RetryPeriod:     lifecycle.RetryPeriod,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				close(started)
				defer close(done)
				runErr = fn(ctx)
				cancel() // a component that ends on its own gives the lease up
			},
			OnStoppedLeading: func() {},
		},
	})
	if err != nil {
		return err
	}
	le.Run(electCtx)
	// The component runs in a goroutine of the elector's: once it has started, wait for it.
	select {
	case <-started:
		<-done
	default:
	}
	if ctx.Err() != nil {
		return nil
	}
	if runErr != nil {
		return runErr
	}
	return fmt.Errorf("lost its lease kube-system/%s", name)
}

// leaseIdentity names this server in a lease: its host name and a random suffix, as the
// Kubernetes components do (several servers may share a host).
func leaseIdentity() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", err
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", errors.Join(errors.New("lease identity"), err)
	}
	return host + "_" + hex.EncodeToString(b), nil
}
