package gateway

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// The phases of a cold start as the API shows them, in the order they happen.
const (
	phaseScaled     = "Deployment scaled to 1"
	phaseReplicaSet = "ReplicaSet scaled to 1"
	phasePodCreated = "pod created"
	phaseBound      = "pod bound to the node"
	phaseRunning    = "containers running, pod IP known"
	phaseEndpoint   = "endpoint listed, not ready"
	phasePodReady   = "pod Ready"
	phaseEndpointOK = "endpoint ready"
	phaseResponse   = "full response"
)

var phaseOrder = []string{phaseScaled, phaseReplicaSet, phasePodCreated, phaseBound, phaseRunning, phaseEndpoint, phasePodReady, phaseEndpointOK}

// timeline records when each phase of a Service's cold start is first seen through watches
// of the namespace, for a table of medians. A watch event arrives a moment after the write
// it shows, so each time is a little late, and by as much for every phase.
type timeline struct {
	mu    sync.Mutex
	start map[string]time.Time            // by Service: when its request was sent
	seen  map[string]map[string]time.Time // by Service, by phase
}

// watchTimeline watches ns until ctx ends.
func watchTimeline(ctx context.Context, c kubernetes.Interface, ns string) (*timeline, error) {
	tl := &timeline{start: map[string]time.Time{}, seen: map[string]map[string]time.Time{}}
	watches := []struct {
		start func() (watch.Interface, error)
		see   func(runtime.Object)
	}{
		{func() (watch.Interface, error) { return c.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{}) }, func(o runtime.Object) {
			if d, ok := o.(*appsv1.Deployment); ok && d.Spec.Replicas != nil && *d.Spec.Replicas > 0 {
				tl.mark(d.Labels, phaseScaled)
			}
		}},
		{func() (watch.Interface, error) { return c.AppsV1().ReplicaSets(ns).Watch(ctx, metav1.ListOptions{}) }, func(o runtime.Object) {
			if r, ok := o.(*appsv1.ReplicaSet); ok && r.Spec.Replicas != nil && *r.Spec.Replicas > 0 {
				tl.mark(r.Labels, phaseReplicaSet)
			}
		}},
		{func() (watch.Interface, error) { return c.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{}) }, func(o runtime.Object) {
			p, ok := o.(*corev1.Pod)
			if !ok {
				return
			}
			tl.mark(p.Labels, phasePodCreated)
			if p.Spec.NodeName != "" {
				tl.mark(p.Labels, phaseBound)
			}
			if p.Status.PodIP != "" {
				tl.mark(p.Labels, phaseRunning)
			}
			for _, cond := range p.Status.Conditions {
				if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
					tl.mark(p.Labels, phasePodReady)
				}
			}
		}},
		{func() (watch.Interface, error) {
			return c.DiscoveryV1().EndpointSlices(ns).Watch(ctx, metav1.ListOptions{})
		}, func(o runtime.Object) {
			s, ok := o.(*discoveryv1.EndpointSlice)
			if !ok {
				return
			}
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && *e.Conditions.Ready {
					tl.mark(s.Labels, phaseEndpointOK)
				} else {
					tl.mark(s.Labels, phaseEndpoint)
				}
			}
		}},
	}
	for _, w := range watches {
		wi, err := w.start()
		if err != nil {
			return nil, err
		}
		go func() {
			for e := range wi.ResultChan() {
				if e.Type == watch.Added || e.Type == watch.Modified {
					w.see(e.Object)
				}
			}
		}()
	}
	return tl, nil
}

// sent records the start of svc's cold start.
func (tl *timeline) sent(svc string, at time.Time) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.start[svc] = at
}

func (tl *timeline) mark(labels map[string]string, phase string) {
	svc := labels[servingv1.ServiceLabelKey]
	now := time.Now()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if _, ok := tl.start[svc]; !ok {
		return
	}
	if tl.seen[svc] == nil {
		tl.seen[svc] = map[string]time.Time{}
	}
	if _, ok := tl.seen[svc][phase]; !ok {
		tl.seen[svc][phase] = now
	}
}

// table is the median time from the request's send to each phase, over the Services whose
// cold start saw it, and the response's (took, by Service).
func (tl *timeline) table(took map[string]time.Duration) string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	row := func(phase string, ds []time.Duration) string {
		if len(ds) == 0 {
			return fmt.Sprintf("| %s | not seen | |\n", phase)
		}
		slices.Sort(ds)
		return fmt.Sprintf("| %s | %s | %d |\n", phase, ms(ds[len(ds)/2]), len(ds))
	}
	out := "\n| phase of the cold start (first seen by a watch) | median after the send | tries |\n|---|---|---|\n"
	for _, phase := range phaseOrder {
		var ds []time.Duration
		for svc, at := range tl.seen {
			if t, ok := at[phase]; ok {
				ds = append(ds, t.Sub(tl.start[svc]))
			}
		}
		out += row(phase, ds)
	}
	var ds []time.Duration
	for _, d := range took {
		ds = append(ds, d)
	}
	return out + row(phaseResponse, ds)
}
