package metrics

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/gantry-run/gantry/internal/queue"
	"github.com/gantry-run/gantry/pkg/apis"
)

// DefaultScrapeTimeout bounds the wait for one pod's stats, so a pod that hangs is left out
// within the second between two scrapes.
const DefaultScrapeTimeout = time.Second

var (
	// ErrNoPods is the scrape of a revision without ready pods: there is nothing to record.
	ErrNoPods = errors.New("no ready pods to scrape")
	// ErrNoPodAnswered is the scrape in which every pod asked failed.
	ErrNoPodAnswered = errors.New("no pod answered the scrape")
)

// FetchFunc asks the queue-proxy of the pod at ip for its stats (queue.ScrapeStats on
// http://<ip>:9090/metrics, in production). It must return when ctx is done.
type FetchFunc func(ctx context.Context, ip string) (queue.Stat, error)

// Pod is one ready pod of a revision.
type Pod struct {
	IP string
	// ReadySince is when the pod became ready. Pods younger than the stable window are asked
	// only when the older ones are too few, as their short history reads low.
	ReadySince time.Time
}

// Scraper asks a sample of a revision's pods for their stats and estimates the whole
// revision's from the pods that answered. One Scraper may serve many revisions at once.
type Scraper struct {
	// Fetch asks one pod; required.
	Fetch FetchFunc
	// Clock tells the time the pods' ages are measured at and the result is stamped with;
	// nil is the wall clock.
	Clock apis.Clock
	// Shuffle orders the pods to sample (rand.Shuffle's signature); nil is rand.Shuffle.
	Shuffle func(n int, swap func(i, j int))
	// Timeout bounds each pod's answer; 0 is DefaultScrapeTimeout.
	Timeout time.Duration
}

// Scrape is the result of one scrape.
type Scrape struct {
	// At is when the scrape ended: the time to record Stat at.
	At time.Time
	// Stat is the revision's total: the mean of the pods that answered times Pods.
	Stat queue.Stat
	// Pods is the population; Answered how many pods' stats Stat is made of.
	Pods, Answered int
	// Failed says why each pod that was asked and did not answer failed.
	Failed []error
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// Scrape asks sampleSize(len(pods)) pods at once, older pods first. A pod that fails or does
// not answer within the timeout is replaced by the next one not yet asked; when none is left,
// the stats of the pods that did answer stand for all, so a hung pod does not stop scaling.
// The error is ErrNoPods for no pods, or ErrNoPodAnswered (joined with each pod's failure)
// when nobody answered; otherwise the Scrape is to be recorded.
func (s *Scraper) Scrape(ctx context.Context, pods []Pod, stableWindow time.Duration) (Scrape, error) {
	clock := s.Clock
	if clock == nil {
		clock = wallClock{}
	}
	if len(pods) == 0 {
		return Scrape{At: clock.Now()}, ErrNoPods
	}
	order := s.order(pods, clock.Now().Add(-stableWindow))

	var (
		mu     sync.Mutex
		next   int
		result = Scrape{Pods: len(pods)}
		sum    queue.Stat
		wg     sync.WaitGroup
	)
	// take hands out the next pod to ask, or "" when none is left.
	take := func() string {
		mu.Lock()
		defer mu.Unlock()
		if next == len(order) {
			return ""
		}
		next++
		return order[next-1]
	}
	for range sampleSize(len(pods)) {
		wg.Go(func() {
			for ip := take(); ip != ""; ip = take() {
				st, err := s.fetch(ctx, ip)
				mu.Lock()
				if err == nil {
					result.Answered++
					addStat(&sum, st)
				} else {
					result.Failed = append(result.Failed, fmt.Errorf("pod %s: %w", ip, err))
				}
				mu.Unlock()
				if err == nil {
					return
				}
			}
		})
	}
	wg.Wait()
	result.At = clock.Now()
	if result.Answered == 0 {
		return result, fmt.Errorf("%w: %w", ErrNoPodAnswered, errors.Join(result.Failed...))
	}
	scale := float64(result.Pods) / float64(result.Answered)
	result.Stat = queue.Stat{
		AverageConcurrency:        sum.AverageConcurrency * scale,
		AverageProxiedConcurrency: sum.AverageProxiedConcurrency * scale,
		PeakConcurrency:           sum.PeakConcurrency * scale,
		RequestsPerSecond:         sum.RequestsPerSecond * scale,
		ProxiedRequestsPerSecond:  sum.ProxiedRequestsPerSecond * scale,
	}
	return result, nil
}

func (s *Scraper) fetch(ctx context.Context, ip string) (queue.Stat, error) {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultScrapeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return s.Fetch(ctx, ip)
}

// order lists the pods' IPs in the order to ask them: the pods ready since before oldBefore
// first, then the younger ones. Whichever group the sample is drawn from is shuffled.
func (s *Scraper) order(pods []Pod, oldBefore time.Time) []string {
	var old, young []string
	for _, p := range pods {
		if p.ReadySince.After(oldBefore) {
			young = append(young, p.IP)
		} else {
			old = append(old, p.IP)
		}
	}
	shuffle := s.Shuffle
	if shuffle == nil {
		shuffle = rand.Shuffle
	}
	drawn := old
	if len(old) < sampleSize(len(pods)) {
		// All the old pods are asked; the rest of the sample comes from the young.
		drawn = young
	}
	shuffle(len(drawn), func(i, j int) { drawn[i], drawn[j] = drawn[j], drawn[i] })
	return append(old, young...)
}

func addStat(sum *queue.Stat, st queue.Stat) {
	sum.AverageConcurrency += st.AverageConcurrency
	sum.AverageProxiedConcurrency += st.AverageProxiedConcurrency
	sum.PeakConcurrency += st.PeakConcurrency
	sum.RequestsPerSecond += st.RequestsPerSecond
	sum.ProxiedRequestsPerSecond += st.ProxiedRequestsPerSecond
}
