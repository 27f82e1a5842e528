package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
)

var (
	ksvcs           = schema.GroupVersionResource{Group: "serving.knative.dev", Version: "v1", Resource: "services"}
	podAutoscalers  = schema.GroupVersionResource{Group: "autoscaling.internal.knative.dev", Version: "v1alpha1", Resource: "podautoscalers"}
	serviceName     = "replay"
	revisionName    = serviceName + "-00001"
	deploymentName  = revisionName + "-deployment"
	serviceHostName = serviceName + ".default.localhost"
)

// settings are the revision's: what the autoscaler is asked to do.
type settings struct {
	target   int           // requests in flight per pod, also the container's concurrency limit
	window   time.Duration // the stable window
	minScale int
	maxScale int
}

// cluster is the server's API, as the benchmark uses it.
type cluster struct {
	client  kubernetes.Interface
	dyn     dynamic.Interface
	metrics string // the server's metrics URL
}

// deploy creates the Service of image with the autoscaling settings and waits until it is
// Ready with min-scale pods ready.
func (c cluster) deploy(ctx context.Context, image string, s settings) error {
	svc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "serving.knative.dev/v1",
		"kind":       "Service",
		"metadata":   map[string]any{"name": serviceName, "namespace": "default"},
		"spec": map[string]any{"template": map[string]any{
			"metadata": map[string]any{"annotations": map[string]any{
				autoscaling.TargetAnnotationKey: strconv.Itoa(s.target),
				// The target is the whole of containerConcurrency, not Knative's default 70 %
				// of it, so the pods wanted are simply the requests in flight ÷ target.
				autoscaling.TargetUtilizationPercentageKey: "100",
				autoscaling.WindowAnnotationKey:            s.window.String(),
				autoscaling.MinScaleAnnotationKey:          strconv.Itoa(s.minScale),
				autoscaling.MaxScaleAnnotationKey:          strconv.Itoa(s.maxScale),
			}},
			"spec": map[string]any{
				"containerConcurrency": int64(s.target),
				"containers":           []any{map[string]any{"image": image}},
			},
		}},
	}}
	if _, err := c.dyn.Resource(ksvcs).Namespace("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the Service: %w", err)
	}
	err := c.waitFor(ctx, fmt.Sprintf("the Service Ready with %d pods", s.minScale), 3*time.Minute, func(ctx context.Context) (bool, error) {
		ksvc, err := c.dyn.Resource(ksvcs).Namespace("default").Get(ctx, serviceName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(ksvc.Object, "status", "conditions")
		for _, cond := range conds {
			if m, ok := cond.(map[string]any); ok && m["type"] == "Ready" && m["status"] != "True" {
				return false, fmt.Errorf("condition Ready %v: %v", m["status"], m["message"])
			}
		}
		if len(conds) == 0 {
			return false, nil
		}
		sc := c.scale(ctx)
		return sc.ready == s.minScale, fmt.Errorf("%d ready", sc.ready)
	})
	if err != nil {
		return fmt.Errorf("%w\n%s", err, c.describe(ctx))
	}
	return nil
}

// describe says what the revision's pods are doing and the namespace's last events, for an
// error.
func (c cluster) describe(ctx context.Context) string {
	var b strings.Builder
	if pods, err := c.client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); err == nil {
		for _, p := range pods.Items {
			fmt.Fprintf(&b, "pod %s: %s on %q", p.Name, p.Status.Phase, p.Spec.NodeName)
			for _, cs := range p.Status.ContainerStatuses {
				fmt.Fprintf(&b, "; %s ready=%t", cs.Name, cs.Ready)
				if w := cs.State.Waiting; w != nil {
					fmt.Fprintf(&b, " waiting %s: %s", w.Reason, w.Message)
				}
				if t := cs.State.Terminated; t != nil {
					fmt.Fprintf(&b, " terminated %s (%d): %s", t.Reason, t.ExitCode, t.Message)
				}
				if !cs.Ready {
					tailLines := int64(20)
					logs, err := c.client.CoreV1().Pods("default").GetLogs(p.Name, &corev1.PodLogOptions{Container: cs.Name, Previous: cs.RestartCount > 0, TailLines: &tailLines}).DoRaw(ctx)
					fmt.Fprintf(&b, "\n  its log: %s%v", logs, err)
				}
			}
			for _, cond := range p.Status.Conditions {
				if cond.Status != corev1.ConditionTrue && cond.Message != "" {
					fmt.Fprintf(&b, "; %s: %s", cond.Type, cond.Message)
				}
			}
			b.WriteString("\n")
		}
	}
	if events, err := c.client.CoreV1().Events("default").List(ctx, metav1.ListOptions{}); err == nil {
		items := events.Items
		for _, e := range items[max(0, len(items)-15):] {
			fmt.Fprintf(&b, "event %s %s/%s: %s %s\n", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
		}
	}
	return b.String()
}

// scale reads the revision's desired and ready pods; -1 for what cannot be read.
func (c cluster) scale(ctx context.Context) scale {
	s := scale{desired: -1, ready: -1, panic: -1}
	if pa, err := c.dyn.Resource(podAutoscalers).Namespace("default").Get(ctx, revisionName, metav1.GetOptions{}); err == nil {
		if d, ok, _ := unstructured.NestedInt64(pa.Object, "status", "desiredScale"); ok {
			s.desired = int(d)
		}
	}
	if d, err := c.client.AppsV1().Deployments("default").Get(ctx, deploymentName, metav1.GetOptions{}); err == nil {
		s.ready = int(d.Status.ReadyReplicas)
	}
	s.panic = c.panicMode(ctx)
	return s
}

// panicMode reads the autoscaler's autoscaler_panic_mode gauge of the revision from the
// server's metrics: 1 in panic, 0 not, -1 unknown.
func (c cluster) panicMode(ctx context.Context) int {
	if c.metrics == "" {
		return -1
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.metrics, nil)
	if err != nil {
		return -1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1
	}
	return panicGauge(string(body), revisionName)
}

// panicGauge finds the revision's autoscaler_panic_mode in a Prometheus text exposition.
func panicGauge(exposition, revision string) int {
	for _, line := range strings.Split(exposition, "\n") {
		if !strings.HasPrefix(line, "autoscaler_panic_mode{") || !strings.Contains(line, `revision_name="`+revision+`"`) {
			continue
		}
		f := strings.Fields(line)
		switch f[len(f)-1] {
		case "1":
			return 1
		case "0":
			return 0
		}
	}
	return -1
}

// sample reads the scale once a second from began, samples[i] at i s, until stop is closed.
func (c cluster) sample(ctx context.Context, began time.Time, stop <-chan struct{}) []scale {
	var out []scale
	for i := 0; ; i++ {
		select {
		case <-stop:
			return out
		case <-ctx.Done():
			return out
		case <-time.After(time.Until(began.Add(time.Duration(i) * time.Second))):
		}
		rctx, cancel := context.WithTimeout(ctx, 900*time.Millisecond)
		out = append(out, c.scale(rctx))
		cancel()
	}
}

// settle waits until the revision is back at min-scale, desired and ready, so the next shape
// starts where this one did.
func (c cluster) settle(ctx context.Context, minScale int) error {
	return c.waitFor(ctx, fmt.Sprintf("back at %d pods", minScale), 3*time.Minute, func(ctx context.Context) (bool, error) {
		s := c.scale(ctx)
		return s.desired == minScale && s.ready == minScale, fmt.Errorf("desired %d, ready %d", s.desired, s.ready)
	})
}

// waitFor polls cond every second until it holds; on timeout the error names what and the
// last state cond reported.
func (c cluster) waitFor(ctx context.Context, what string, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: not within %s (last: %w)", what, timeout, last)
		}
		time.Sleep(time.Second)
	}
}
