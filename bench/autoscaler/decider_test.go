// Package autoscaler benchmarks the KPA's decision for one revision, the work done for each
// revision on every tick.
//
//	go test ./bench/autoscaler -run '^$' -bench . -benchtime 2s -count 3
//
// BenchmarkDecide times scaling.Decider.Decide alone, for a revision with Knative's defaults
// and a scale-down delay (so the delay window is kept too), under a load that moves through
// steady, rising, panicking and falling, with the clock moved 2 s a decision as the scaler
// ticks. BenchmarkCollectAndDecide adds what a tick does before deciding: one scrape's record
// into the revision's four windows and the reading of its stable and panic averages.
// The target is 10 µs per decision.
package autoscaler

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/gantry-run/gantry/internal/autoscaler/metrics"
	"github.com/gantry-run/gantry/internal/autoscaler/scaling"
	"github.com/gantry-run/gantry/internal/queue"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
	"github.com/gantry-run/gantry/pkg/apis/config"
)

// loads is a cycle of a revision's concurrency, sampled every 2 s: steady, a burst that
// panics, and the fall back.
var loads = func() []float64 {
	var l []float64
	for i := range 60 {
		l = append(l, 50)
		l = append(l, 50+float64(i*10))
	}
	for i := range 60 {
		l = append(l, float64(600-i*10))
	}
	return l
}()

func settings(b *testing.B) scaling.Settings {
	s, err := scaling.NewSettings(config.NewAutoscaler(), map[string]string{
		autoscaling.TargetAnnotationKey:         "10",
		autoscaling.ScaleDownDelayAnnotationKey: "30s",
		autoscaling.MinScaleAnnotationKey:       "1",
	}, 0)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkDecide(b *testing.B) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	d := scaling.NewDecider(settings(b), 5, now)
	ready := int32(5)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		now = now.Add(2 * time.Second)
		load := loads[i%len(loads)]
		r := d.Decide(scaling.Inputs{
			ReadyPods: ready, Reachable: true, HaveMetrics: true, Initialized: true,
			Stable: load * 0.8, Panic: load,
		}, now)
		ready = max(1, r.DesiredScale)
	}
}

func BenchmarkCollectAndDecide(b *testing.B) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	s := settings(b)
	rev := types.NamespacedName{Namespace: "default", Name: "hello-00001"}
	c := metrics.NewCollector()
	c.Watch(rev, s.StableWindow, s.PanicWindow)
	d := scaling.NewDecider(s, 5, now)
	ready := int32(5)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		now = now.Add(2 * time.Second)
		c.Record(rev, now, queue.Stat{AverageConcurrency: loads[i%len(loads)]})
		stable, panic, err := c.Averages(rev, s.Metric, now)
		if err != nil {
			b.Fatal(err)
		}
		r := d.Decide(scaling.Inputs{
			ReadyPods: ready, Reachable: true, HaveMetrics: true, Initialized: true,
			Stable: stable, Panic: panic,
		}, now)
		ready = max(1, r.DesiredScale)
	}
}
