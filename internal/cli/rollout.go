package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/kn"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// pollInterval is how often a wait looks at the objects again.
const pollInterval = 100 * time.Millisecond

// progress prints the steps of a rollout with the time since start, as kn does.
type progress struct {
	w       io.Writer
	start   time.Time
	printed map[string]bool
}

func newProgress(w io.Writer, start time.Time) *progress {
	return &progress{w: w, start: start, printed: map[string]bool{}}
}

// header prints the line a rollout's steps come under.
func (p *progress) header(format string, args ...any) {
	fmt.Fprintf(p.w, format+"\n\n", args...)
}

func (p *progress) say(line string) {
	if line == "" || p.printed[line] {
		return
	}
	p.printed[line] = true
	fmt.Fprintf(p.w, "%8.3fs %s\n", time.Since(p.start).Seconds(), line)
}

// waitRollout waits until the Service name, at generation gen or later, serves the revision
// its Configuration last created, printing each step reached. It returns the Service and
// that revision's name; a failed revision or route is an error with its reason.
func (k *knClient) waitRollout(ctx context.Context, name string, gen int64, previous string, timeout time.Duration, p *progress) (*servingv1.Service, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	key := types.NamespacedName{Namespace: k.namespace, Name: name}
	var last kn.Rollout
	for {
		svc, r, err := k.observe(ctx, key, gen, previous)
		if err != nil && ctx.Err() == nil {
			return nil, "", err
		}
		if err == nil {
			last = r
			for _, line := range r.Reached {
				p.say(line)
			}
			if r.Err != nil {
				return nil, r.Revision, r.Err
			}
			if r.Done {
				return svc, r.Revision, nil
			}
		}
		select {
		case <-ctx.Done():
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, last.Revision, ctx.Err()
			}
			what := "its revision"
			if last.Revision != "" {
				what = last.Revision
			}
			return nil, last.Revision, fmt.Errorf("service %s: %s not ready after %s (gantry service describe %s says why)", name, what, timeout, name)
		case <-time.After(pollInterval):
		}
	}
}

// observe reads the Service, its Configuration, its latest created revision and that
// revision's pods once.
func (k *knClient) observe(ctx context.Context, key types.NamespacedName, gen int64, previous string) (*servingv1.Service, kn.Rollout, error) {
	st := kn.RolloutState{Service: &servingv1.Service{}, Generation: gen, Previous: previous}
	if err := k.Get(ctx, key, st.Service); err != nil {
		return nil, kn.Rollout{}, k.check(err, "service", key.Name)
	}
	cfg := &servingv1.Configuration{}
	if err := k.Get(ctx, key, cfg); err == nil {
		st.Configuration = cfg
	} else if !apierrors.IsNotFound(err) {
		return nil, kn.Rollout{}, apiError(err, k.host)
	}
	name := st.RevisionName()
	if name == "" {
		return st.Service, kn.Observe(st), nil
	}
	rev := &servingv1.Revision{}
	if err := k.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: name}, rev); err == nil {
		st.Revision = rev
	} else if !apierrors.IsNotFound(err) {
		return nil, kn.Rollout{}, apiError(err, k.host)
	}
	pods := &corev1.PodList{}
	if err := k.List(ctx, pods, client.InNamespace(key.Namespace), client.MatchingLabels{servingv1.RevisionLabelKey: name}); err != nil {
		return nil, kn.Rollout{}, apiError(err, k.host)
	}
	st.Pods = pods.Items
	return st.Service, kn.Observe(st), nil
}

// waitGone waits until get reports NotFound.
func waitGone(ctx context.Context, timeout time.Duration, get func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := get(ctx)
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("still there after %s", timeout)
		case <-time.After(pollInterval):
		}
	}
}
