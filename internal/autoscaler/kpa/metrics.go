package kpa

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gantry-run/gantry/internal/autoscaler/scaling"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

// revisionLabels are the labels of every autoscaler metric, Knative's.
var revisionLabels = []string{"namespace_name", "service_name", "configuration_name", "revision_name"}

// gauges are the autoscaler's state per revision, under Knative's metric names. The
// autoscaler of no Registerer has none: a nil *gauges records nothing.
type gauges struct {
	desired, requested, actual, stable, panic, target, excess, panicMode *prometheus.GaugeVec
}

func newGauges() *gauges {
	g := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "autoscaler_" + name, Help: help}, revisionLabels)
	}
	return &gauges{
		desired:   g("desired_pods", "Number of pods the autoscaler wants."),
		requested: g("requested_pods", "Number of pods the autoscaler requested from the Deployment."),
		actual:    g("actual_pods", "Number of pods that are ready."),
		stable:    g("stable_request_concurrency", "Average requests in flight (or per second, for the rps metric) over the stable window."),
		panic:     g("panic_request_concurrency", "Average requests in flight (or per second, for the rps metric) over the panic window."),
		target:    g("target_concurrency_per_pod", "The metric's target per pod."),
		excess:    g("excess_burst_capacity", "Spare capacity beyond the target burst capacity; negative keeps the activator in the path."),
		panicMode: g("panic_mode", "1 while the autoscaler is in panic mode, else 0."),
	}
}

// gaugesFor is the gauges an autoscaler registers in r; nil when r is.
func gaugesFor(r prometheus.Registerer) *gauges {
	if r == nil {
		return nil
	}
	return newGauges()
}

func (g *gauges) all() []*prometheus.GaugeVec {
	return []*prometheus.GaugeVec{g.desired, g.requested, g.actual, g.stable, g.panic, g.target, g.excess, g.panicMode}
}

// register adds the gauges to r.
func (g *gauges) register(r prometheus.Registerer) error {
	for _, v := range g.all() {
		if err := r.Register(v); err != nil {
			return err
		}
	}
	return nil
}

func labelsOf(pa *pav1alpha1.PodAutoscaler) prometheus.Labels {
	return prometheus.Labels{
		"namespace_name":     pa.Namespace,
		"service_name":       pa.Labels[servingv1.ServiceLabelKey],
		"configuration_name": pa.Labels[servingv1.ConfigurationLabelKey],
		"revision_name":      pa.Name,
	}
}

// record sets the gauges of pa's revision after a decision.
func (g *gauges) record(pa *pav1alpha1.PodAutoscaler, s scaling.Settings, in scaling.Inputs, r scaling.ScaleResult) {
	if g == nil {
		return
	}
	l := labelsOf(pa)
	g.actual.With(l).Set(float64(in.ReadyPods))
	g.target.With(l).Set(s.Target)
	if in.HaveMetrics {
		g.stable.With(l).Set(in.Stable)
		g.panic.With(l).Set(in.Panic)
	}
	if !r.Valid {
		return
	}
	g.desired.With(l).Set(float64(r.DesiredScale))
	g.requested.With(l).Set(float64(r.DesiredScale))
	g.excess.With(l).Set(float64(r.ExcessBurstCapacity))
	mode := 0.0
	if r.Panicking {
		mode = 1
	}
	g.panicMode.With(l).Set(mode)
}

// forget drops the gauges of a revision that is gone.
func (g *gauges) forget(key types.NamespacedName) {
	if g == nil {
		return
	}
	for _, v := range g.all() {
		v.DeletePartialMatch(prometheus.Labels{"namespace_name": key.Namespace, "revision_name": key.Name})
	}
}
