package metrics

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gantry-run/gantry/internal/queue"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
)

var rev = types.NamespacedName{Namespace: "default", Name: "hello-00001"}

type averages struct {
	Stable, Panic float64
	Err           error
}

func averagesOf(c *Collector, metric string, at float64) averages {
	s, p, err := c.Averages(rev, metric, sec(at))
	return averages{s, p, err}
}

func TestCollector(t *testing.T) {
	c := NewCollector()
	if c.Record(rev, sec(0), queue.Stat{AverageConcurrency: 1}) || c.RecordActivator(rev, sec(0), 1, 1) {
		t.Error("recorded for a revision not watched")
	}
	cmpErr := cmp.Comparer(func(a, b error) bool { return errors.Is(a, b) })
	check := func(what, metric string, at float64, want averages) {
		t.Helper()
		if diff := cmp.Diff(want, averagesOf(c, metric, at), cmpErr); diff != "" {
			t.Errorf("%s (-want +got):\n%s", what, diff)
		}
	}
	check("not watched", autoscaling.Concurrency, 0, averages{Err: ErrNotWatched})

	c.Watch(rev, 10*time.Second, 2*time.Second)
	check("no data", autoscaling.Concurrency, 0, averages{Err: ErrNoData})

	// The pods' proxied part is the activator's to report.
	for s := range 8 {
		c.Record(rev, sec(float64(s)), queue.Stat{
			AverageConcurrency: 10, AverageProxiedConcurrency: 4,
			RequestsPerSecond: 20, ProxiedRequestsPerSecond: 5,
		})
		c.RecordActivator(rev, sec(float64(s)), 4, 5)
	}
	check("steady", autoscaling.Concurrency, 7, averages{Stable: 10, Panic: 10})
	check("steady rps", autoscaling.RPS, 7, averages{Stable: 20, Panic: 20})

	// A burst shows in the panic window first.
	for _, s := range []float64{8, 9} {
		c.Record(rev, sec(s), queue.Stat{AverageConcurrency: 30, RequestsPerSecond: 60})
	}
	check("burst", autoscaling.Concurrency, 9, averages{Stable: 14, Panic: 30})
	check("burst rps", autoscaling.RPS, 9, averages{Stable: 28, Panic: 60})

	// A new window applies to the records there are.
	c.Watch(rev, 4*time.Second, time.Second)
	check("resized", autoscaling.Concurrency, 9, averages{Stable: 20, Panic: 30})

	check("stale", autoscaling.Concurrency, 13, averages{Err: ErrNoData})

	c.Forget(rev)
	check("forgotten", autoscaling.Concurrency, 9, averages{Err: ErrNotWatched})
}

func TestCollectorFromZero(t *testing.T) {
	// At zero only the activator reports: its one request holds the windows until the
	// revision's pod reports.
	c := NewCollector()
	c.Watch(rev, 60*time.Second, 6*time.Second)
	if !c.RecordActivator(rev, sec(0), 1, 1) {
		t.Fatal("RecordActivator: not watched")
	}
	if diff := cmp.Diff(averages{Stable: 1, Panic: 1}, averagesOf(c, autoscaling.Concurrency, 4)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestCollectorConcurrentUse(t *testing.T) {
	c := NewCollector()
	c.Watch(rev, 6*time.Second, time.Second)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for s := range 100 {
				c.Record(rev, sec(float64(s)), queue.Stat{AverageConcurrency: 1})
				c.RecordActivator(rev, sec(float64(s)), 1, 1)
				c.Averages(rev, autoscaling.Concurrency, sec(float64(s)))
				if i == 0 {
					c.Watch(rev, time.Duration(6+s%3)*time.Second, time.Second)
				}
			}
		})
	}
	wg.Wait()
}

func TestRecordNeverGoesBelowZero(t *testing.T) {
	c := NewCollector()
	rev := types.NamespacedName{Namespace: "ns", Name: "r"}
	c.Watch(rev, 6*time.Second, time.Second)
	now := time.Date(2026, 11, 28, 13, 0, 0, 0, time.UTC)
	c.Record(rev, now, queue.Stat{AverageConcurrency: 0.9, AverageProxiedConcurrency: 1, RequestsPerSecond: 3, ProxiedRequestsPerSecond: 3.5})
	stable, panic, err := c.Averages(rev, "concurrency", now)
	if err != nil || stable != 0 || panic != 0 {
		t.Fatalf("concurrency averages %v %v (%v), want 0", stable, panic, err)
	}
	if rps, _, _ := c.Averages(rev, "rps", now); rps != 0 {
		t.Fatalf("rps average %v, want 0", rps)
	}
}
