package metrics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantry-run/gantry/internal/queue"
)

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

// fakePods answers for pods by IP: a stat, an error, or no answer until the context ends.
type fakePods struct {
	mu     sync.Mutex
	asked  []string
	fail   map[string]error
	hang   map[string]bool
	answer func(ip string) queue.Stat
}

var errRefused = errors.New("connection refused")

func (f *fakePods) fetch(ctx context.Context, ip string) (queue.Stat, error) {
	f.mu.Lock()
	f.asked = append(f.asked, ip)
	f.mu.Unlock()
	if f.hang[ip] {
		<-ctx.Done()
		return queue.Stat{}, ctx.Err()
	}
	if err := f.fail[ip]; err != nil {
		return queue.Stat{}, err
	}
	if f.answer != nil {
		return f.answer(ip), nil
	}
	return queue.Stat{PodName: ip, AverageConcurrency: 2, AverageProxiedConcurrency: 1, PeakConcurrency: 3, RequestsPerSecond: 4, ProxiedRequestsPerSecond: 0.5, ProcessUptime: 100}, nil
}

// podsOf makes n pods named p0…, ready for an hour; the young ones became ready just now.
func podsOf(n, young int) []Pod {
	var pods []Pod
	for i := range n {
		since := sec(-3600)
		if i >= n-young {
			since = sec(-1)
		}
		pods = append(pods, Pod{IP: fmt.Sprintf("p%d", i), ReadySince: since})
	}
	return pods
}

func noShuffle(int, func(i, j int)) {}

func TestSampleSize(t *testing.T) {
	got := map[int]int{}
	for _, n := range []int{-1, 0, 1, 3, 4, 10, 20, 100, 1000, 100000} {
		got[n] = sampleSize(n)
	}
	want := map[int]int{-1: 0, 0: 0, 1: 1, 3: 3, 4: 4, 10: 7, 20: 9, 100: 14, 1000: 16, 100000: 16}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sampleSize (-want +got):\n%s", diff)
	}
}

func TestScrape(t *testing.T) {
	each := queue.Stat{AverageConcurrency: 2, AverageProxiedConcurrency: 1, PeakConcurrency: 3, RequestsPerSecond: 4, ProxiedRequestsPerSecond: 0.5}
	times := func(n float64) queue.Stat {
		return queue.Stat{
			AverageConcurrency: each.AverageConcurrency * n, AverageProxiedConcurrency: each.AverageProxiedConcurrency * n,
			PeakConcurrency: each.PeakConcurrency * n, RequestsPerSecond: each.RequestsPerSecond * n,
			ProxiedRequestsPerSecond: each.ProxiedRequestsPerSecond * n,
		}
	}
	tests := []struct {
		name      string
		pods      []Pod
		fail      []string
		hang      []string
		want      Scrape
		wantAsked []string // in order; nil: not checked
		wantErr   error
	}{{
		name:    "no pods",
		want:    Scrape{At: sec(0)},
		wantErr: ErrNoPods,
	}, {
		name:      "every pod of a few",
		pods:      podsOf(3, 0),
		want:      Scrape{At: sec(0), Stat: times(3), Pods: 3, Answered: 3},
		wantAsked: []string{"p0", "p1", "p2"},
	}, {
		name: "a sample of many stands for all",
		pods: podsOf(100, 0),
		want: Scrape{At: sec(0), Stat: times(100), Pods: 100, Answered: 14},
		wantAsked: []string{"p0", "p1", "p10", "p11", "p12", "p13", "p2", "p3", "p4", "p5",
			"p6", "p7", "p8", "p9"},
	}, {
		name:      "a failed pod is replaced by the next",
		pods:      podsOf(20, 0),
		fail:      []string{"p0", "p1", "p2"},
		want:      Scrape{At: sec(0), Stat: times(20), Pods: 20, Answered: 9},
		wantAsked: []string{"p0", "p1", "p10", "p11", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"},
	}, {
		name:      "a hung pod is left out; those that answered stand for all",
		pods:      podsOf(3, 0),
		hang:      []string{"p1"},
		want:      Scrape{At: sec(0), Stat: times(3), Pods: 3, Answered: 2},
		wantAsked: []string{"p0", "p1", "p2"},
	}, {
		name:    "nobody answers",
		pods:    podsOf(2, 0),
		fail:    []string{"p0", "p1"},
		want:    Scrape{At: sec(0), Pods: 2},
		wantErr: ErrNoPodAnswered,
	}, {
		name:      "young pods only when the old are too few",
		pods:      podsOf(10, 8),
		want:      Scrape{At: sec(0), Stat: times(10), Pods: 10, Answered: 7},
		wantAsked: []string{"p0", "p1", "p2", "p3", "p4", "p5", "p6"},
	}, {
		name:      "young pods stand in for old ones that fail",
		pods:      podsOf(5, 1),
		fail:      []string{"p0"},
		want:      Scrape{At: sec(0), Stat: times(5), Pods: 5, Answered: 4},
		wantAsked: []string{"p0", "p1", "p2", "p3", "p4"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakePods{fail: map[string]error{}, hang: map[string]bool{}}
			for _, ip := range tc.fail {
				f.fail[ip] = errRefused
			}
			for _, ip := range tc.hang {
				f.hang[ip] = true
			}
			s := &Scraper{Fetch: f.fetch, Clock: fixedClock(sec(0)), Shuffle: noShuffle, Timeout: 20 * time.Millisecond}
			got, err := s.Scrape(context.Background(), tc.pods, time.Minute)
			if !errors.Is(err, tc.wantErr) || (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if len(got.Failed) != len(tc.fail)+len(tc.hang) {
				t.Errorf("Failed = %v, want one for each of %v %v", got.Failed, tc.fail, tc.hang)
			}
			got.Failed = nil
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Scrape (-want +got):\n%s", diff)
			}
			if tc.wantAsked != nil {
				slices.Sort(f.asked)
				if diff := cmp.Diff(tc.wantAsked, f.asked); diff != "" {
					t.Errorf("pods asked (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestScrapeFailures(t *testing.T) {
	f := &fakePods{fail: map[string]error{"p0": errRefused}, hang: map[string]bool{"p1": true}}
	s := &Scraper{Fetch: f.fetch, Clock: fixedClock(sec(0)), Shuffle: noShuffle, Timeout: 10 * time.Millisecond}
	_, err := s.Scrape(context.Background(), podsOf(2, 0), time.Minute)
	for _, want := range []error{ErrNoPodAnswered, errRefused, context.DeadlineExceeded} {
		if !errors.Is(err, want) {
			t.Errorf("err = %v, want it to hold %v", err, want)
		}
	}
}

func TestScrapeShufflesTheSampledGroup(t *testing.T) {
	var shuffled []int
	shuffle := func(n int, swap func(i, j int)) {
		shuffled = append(shuffled, n)
		if n > 1 {
			swap(0, n-1)
		}
	}
	f := &fakePods{}
	s := &Scraper{Fetch: f.fetch, Clock: fixedClock(sec(0)), Shuffle: shuffle}
	// 20 old pods, 2 young: the sample of 10 is drawn from the old, the first of which is
	// swapped with the last.
	if _, err := s.Scrape(context.Background(), podsOf(22, 2), time.Minute); err != nil {
		t.Fatal(err)
	}
	slices.Sort(f.asked)
	want := []string{"p1", "p19", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9"}
	if diff := cmp.Diff(want, f.asked); diff != "" {
		t.Errorf("pods asked (-want +got):\n%s", diff)
	}
	// 1 old pod, 3 young: all are asked, the young are the ones shuffled.
	shuffled = nil
	if _, err := s.Scrape(context.Background(), podsOf(4, 3), time.Minute); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{3}, shuffled); diff != "" {
		t.Errorf("shuffled groups (-want +got):\n%s", diff)
	}
}

func TestScrapeDefaults(t *testing.T) {
	f := &fakePods{}
	s := &Scraper{Fetch: func(ctx context.Context, ip string) (queue.Stat, error) {
		deadline, ok := ctx.Deadline()
		if !ok || time.Until(deadline) > DefaultScrapeTimeout {
			t.Errorf("deadline %v, %v: want within %v", deadline, ok, DefaultScrapeTimeout)
		}
		return f.fetch(ctx, ip)
	}}
	before := time.Now()
	got, err := s.Scrape(context.Background(), podsOf(5, 0), time.Minute)
	if err != nil || got.Answered != 4 || got.At.Before(before) {
		t.Errorf("Scrape = %+v, %v", got, err)
	}
}
