// Package leaderelect runs a part of gantry server on one server of a cluster at a time: the
// one that holds the part's Lease in kube-system. A single server needs none (its data dir is
// locked: it is the only one); the servers of a cluster (--cluster-init, --server) elect.
package leaderelect

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

// Run runs fn while this server holds the Lease kube-system/name (acting as cfg's user), and
// returns once ctx ends, with the lease handed over. A lost lease is fn's failure: Run cancels
// fn's context, waits for it and returns an error, so the server stops cleanly for its
// supervisor to restart it (as the Kubernetes components end their process then). The
// controller-manager and the scheduler run under it instead of their own --leader-elect, which
// ends the whole process on a stop or a loss (os.Exit in their callbacks).
func Run(ctx context.Context, cfg *rest.Config, name string, fn func(ctx context.Context) error) error {
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
