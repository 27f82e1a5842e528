package queue

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRequestStatsWeighsConcurrencyByTime(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	s := NewRequestStats(t0)
	// Two requests of 500 ms each in a 1 s window, overlapping for 250 ms; the second came
	// through the activator.
	s.In(at(0), false)
	s.In(at(250), true)
	s.Out(at(500), false)
	s.Out(at(750), true)
	got := s.Report(at(1000))
	// ∫ concurrency: 1×250 + 2×250 + 1×250 + 0×250 = 1000 ms·request over 1000 ms.
	want := Report{AverageConcurrency: 1, AverageProxiedConcurrency: 0.5, PeakConcurrency: 2, RequestCount: 2, ProxiedRequestCount: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("first window (-want +got):\n%s", diff)
	}
	// A request still running carries into the next window.
	s.In(at(1500), false)
	got = s.Report(at(2000))
	want = Report{AverageConcurrency: 0.5, PeakConcurrency: 1, RequestCount: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("second window (-want +got):\n%s", diff)
	}
	got = s.Report(at(3000))
	want = Report{AverageConcurrency: 1, PeakConcurrency: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("third window (-want +got):\n%s", diff)
	}
}

func TestRequestStatsIgnoresABackwardClock(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := NewRequestStats(t0)
	s.In(t0.Add(time.Second), false)
	s.Out(t0.Add(500*time.Millisecond), false) // earlier than the last change
	got := s.Report(t0.Add(2 * time.Second))
	if got.AverageConcurrency != 0 || got.RequestCount != 1 {
		t.Errorf("report = %+v, want no concurrency from a backward step and 1 request", got)
	}
}

func TestStatsReporterServesWhatParseStatsReads(t *testing.T) {
	cfg := Config{Namespace: "default", Configuration: "hello", Revision: "hello-00001", Pod: "hello-00001-deployment-abc"}
	start := time.Unix(1000, 0)
	r := newStatsReporter(&cfg, start, time.Second)
	r.report(Report{AverageConcurrency: 1.5, AverageProxiedConcurrency: 0.5, PeakConcurrency: 3, RequestCount: 12, ProxiedRequestCount: 4}, start.Add(90*time.Second))

	rec := httptest.NewRecorder()
	r.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for _, line := range []string{
		`queue_average_concurrent_requests{destination_configuration="hello",destination_namespace="default",destination_pod="hello-00001-deployment-abc",destination_revision="hello-00001"} 1.5`,
		`queue_requests_per_second{destination_configuration="hello",destination_namespace="default",destination_pod="hello-00001-deployment-abc",destination_revision="hello-00001"} 12`,
	} {
		if !strings.Contains(body, line) {
			t.Errorf("stats do not contain\n%s\nin\n%s", line, body)
		}
	}
	got, err := ParseStats(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{
		PodName: "hello-00001-deployment-abc", AverageConcurrency: 1.5, AverageProxiedConcurrency: 0.5,
		PeakConcurrency: 3, RequestsPerSecond: 12, ProxiedRequestsPerSecond: 4, ProcessUptime: 90,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseStats (-want +got):\n%s", diff)
	}
}

func TestParseStatsRefusesOtherMetrics(t *testing.T) {
	if _, err := ParseStats(strings.NewReader("# TYPE up gauge\nup 1\n")); !errors.Is(err, ErrNoStats) {
		t.Errorf("err = %v, want ErrNoStats", err)
	}
	if _, err := ParseStats(strings.NewReader("not { prometheus")); err == nil {
		t.Error("err = nil for a malformed body")
	}
}
