package metrics

import (
	"errors"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/gantry-run/gantry/internal/queue"
	"github.com/gantry-run/gantry/pkg/apis/autoscaling"
)

var (
	// ErrNotWatched is the answer for a revision the collector keeps no windows for.
	ErrNotWatched = errors.New("revision not watched by the metric collector")
	// ErrNoData is the answer for a revision with no sample in its stable window.
	ErrNoData = errors.New("no metric data in the stable window")
)

// Collector keeps each watched revision's stable and panic windows of concurrency and
// requests per second. It is safe for concurrent use.
type Collector struct {
	mu       sync.Mutex
	revision map[types.NamespacedName]*series
}

// series is one revision's windows.
type series struct {
	concurrency, concurrencyPanic *Window
	rps, rpsPanic                 *Window
}

// NewCollector returns a collector that watches no revision.
func NewCollector() *Collector {
	return &Collector{revision: map[types.NamespacedName]*series{}}
}

// Watch starts keeping windows for rev, or resizes the ones it has (a changed window keeps the
// records that fit).
func (c *Collector) Watch(rev types.NamespacedName, stable, panic time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.revision[rev]; ok {
		s.concurrency.Resize(stable)
		s.rps.Resize(stable)
		s.concurrencyPanic.Resize(panic)
		s.rpsPanic.Resize(panic)
		return
	}
	c.revision[rev] = &series{
		concurrency: NewWindow(stable), concurrencyPanic: NewWindow(panic),
		rps: NewWindow(stable), rpsPanic: NewWindow(panic),
	}
}

// Forget drops rev's windows.
func (c *Collector) Forget(rev types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.revision, rev)
}

// Record adds the stat of rev's pods (all of them: Scraper.Scrape's total) at now. The part
// the activator proxied is left out: the activator reports it itself. It reports false when
// rev is not watched.
func (c *Collector) Record(rev types.NamespacedName, now time.Time, stat queue.Stat) bool {
	// The two parts are averaged over slightly different spans, so the difference can dip
	// below zero; no load is less than none.
	return c.add(rev, now,
		max(stat.AverageConcurrency-stat.AverageProxiedConcurrency, 0),
		max(stat.RequestsPerSecond-stat.ProxiedRequestsPerSecond, 0))
}

// RecordActivator adds what the activator saw of rev over the second before now: its average
// concurrency and its requests per second, the ones it holds while rev is at zero included.
// It reports false when rev is not watched.
func (c *Collector) RecordActivator(rev types.NamespacedName, now time.Time, concurrency, rps float64) bool {
	return c.add(rev, now, concurrency, rps)
}

func (c *Collector) add(rev types.NamespacedName, now time.Time, concurrency, rps float64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.revision[rev]
	if ok {
		s.concurrency.Record(now, concurrency)
		s.concurrencyPanic.Record(now, concurrency)
		s.rps.Record(now, rps)
		s.rpsPanic.Record(now, rps)
	}
	return ok
}

// Averages returns rev's metric (autoscaling.RPS, or else concurrency) averaged over the
// stable and the panic window at now: ErrNotWatched or ErrNoData when there is none.
func (c *Collector) Averages(rev types.NamespacedName, metric string, now time.Time) (stable, panic float64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.revision[rev]
	if !ok {
		return 0, 0, ErrNotWatched
	}
	st, pa := s.concurrency, s.concurrencyPanic
	if metric == autoscaling.RPS {
		st, pa = s.rps, s.rpsPanic
	}
	if st.Empty(now) {
		return 0, 0, ErrNoData
	}
	return st.Average(now), pa.Average(now), nil
}
