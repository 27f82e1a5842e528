package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func testShapes() map[string]shape {
	return shapes(shapeOptions{concurrency: 50, burst: 100, base: 10, hold: 60 * time.Second, spike: 10 * time.Second, tail: 40 * time.Second})
}

func TestShapeConcurrency(t *testing.T) {
	all := testShapes()
	for _, tc := range []struct {
		shape string
		at    time.Duration
		want  int
	}{
		{"step", 0, 0},
		{"step", 4900 * time.Millisecond, 0},
		{"step", 5 * time.Second, 50},
		{"step", 64 * time.Second, 50},
		{"step", 65 * time.Second, 0},
		{"step", 10 * time.Hour, 0},
		{"ramp", 5 * time.Second, 0},
		{"ramp", 35 * time.Second, 25},
		{"ramp", 59 * time.Second, 45},
		{"ramp", 66 * time.Second, 50},
		{"ramp", 75 * time.Second, 0},
		{"burst", 6 * time.Second, 10},
		{"burst", 25 * time.Second, 100},
		{"burst", 34 * time.Second, 100},
		{"burst", 35 * time.Second, 10},
		{"burst", 55 * time.Second, 0},
	} {
		if got := all[tc.shape].concurrency(tc.at); got != tc.want {
			t.Errorf("%s at %s: %d in flight, want %d", tc.shape, tc.at, got, tc.want)
		}
	}
	for name, want := range map[string]struct {
		d          time.Duration
		peak       int
		first, all time.Duration // the load calls for one pod, for all the peak calls for (target 10, max 8)
	}{
		"step":  {105 * time.Second, 50, 5 * time.Second, 5 * time.Second},
		"ramp":  {115 * time.Second, 50, 5*time.Second + 600*time.Millisecond, 53*time.Second + 600*time.Millisecond},
		"burst": {95 * time.Second, 100, 5 * time.Second, 25 * time.Second},
	} {
		sh := all[name]
		pods := min(8, (sh.peak()+9)/10)
		if sh.duration() != want.d || sh.peak() != want.peak || sh.asks(1, 10) != want.first || sh.asks(pods, 10) != want.all {
			t.Errorf("%s: duration %s, peak %d, asks for a pod at %s, for %d at %s; want %s, %d, %s, %s",
				name, sh.duration(), sh.peak(), sh.asks(1, 10), pods, sh.asks(pods, 10), want.d, want.peak, want.first, want.all)
		}
	}
	if got := all["step"].asks(6, 10); got != 105*time.Second {
		t.Errorf("step asks for 6 pods at %s, want never (its end, 105s)", got)
	}
}

func TestShapeOptionsRefuseWhatWouldOverloadTheMachine(t *testing.T) {
	ok := shapeOptions{concurrency: 50, burst: 100, base: 10, hold: time.Minute, spike: 10 * time.Second, tail: 40 * time.Second}
	if err := ok.validate(); err != nil {
		t.Fatalf("the defaults: %v", err)
	}
	for flag, o := range map[string]shapeOptions{
		"-concurrency": {concurrency: 5000, burst: 100, base: 10, hold: time.Minute, spike: time.Second},
		"-burst-base":  {concurrency: 50, burst: 100, base: 100, hold: time.Minute, spike: time.Second},
		"-hold":        {concurrency: 50, burst: 100, base: 10, hold: time.Hour, spike: time.Second},
		"-spike":       {concurrency: 50, burst: 100, base: 10, hold: time.Minute},
	} {
		if err := o.validate(); err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("%+v: error %v, want one naming %s", o, err, flag)
		}
	}
}

func TestPerSecondAndSummary(t *testing.T) {
	sh := shape{name: "step", phases: []phase{{2 * time.Second, 0, 0}, {3 * time.Second, 20, 20}}}
	ms := time.Millisecond
	reqs := []request{
		{start: 2100 * ms, took: 100 * ms, ok: true},
		{start: 2200 * ms, took: 300 * ms, ok: true},
		{start: 2300 * ms, took: 5 * time.Second, ok: false},
		{start: 3500 * ms, took: 120 * ms, ok: true},
		{start: 4999 * ms, took: 110 * ms, ok: true},
		{start: 9 * time.Second, took: ms, ok: true}, // past the end: left out of the seconds
	}
	samples := []scale{{1, 1, 0}, {1, 1, 0}, {1, 1, 1}, {2, 1, 1}, {2, 2, 0}}
	secs := perSecond(sh, reqs, samples, 6)
	want := []second{
		{t: 0, offered: 0, desired: 1, ready: 1},
		{t: 1, offered: 0, desired: 1, ready: 1},
		{t: 2, offered: 20, desired: 1, ready: 1, panic: 1, sent: 3, ok: 2, failed: 1, p50: 100 * ms, p99: 300 * ms},
		{t: 3, offered: 20, desired: 2, ready: 1, panic: 1, sent: 1, ok: 1, p50: 120 * ms, p99: 120 * ms},
		{t: 4, offered: 20, desired: 2, ready: 2, sent: 1, ok: 1, p50: 110 * ms, p99: 110 * ms},
		{t: 5, offered: 0, desired: -1, ready: -1, panic: -1},
	}
	for i := range want {
		if secs[i] != want[i] {
			t.Errorf("second %d: %+v, want %+v", i, secs[i], want[i])
		}
	}

	s := summarize(sh, secs, reqs, 10, 8)
	if s.want != 2 || s.toDesired != time.Second || s.toReady != 2*time.Second || s.maxDesired != 2 || s.maxReady != 2 || s.panicSeconds != 2 {
		t.Errorf("summary %+v: want 2 pods, desired after 1s, ready after 2s, max 2 and 2, 2 s in panic", s)
	}
	if s.sent != 6 || s.ok != 5 || s.failed != 1 || s.p50 != 110*ms || s.p99 != 300*ms {
		t.Errorf("summary %+v: want 6 sent, 5 ok, 1 failed, p50 110ms, p99 300ms", s)
	}
	// max-scale caps the pods the peak calls for; a level never reached reads "never".
	s = summarize(sh, secs, reqs, 1, 8)
	if s.want != 8 || s.toDesired != -1 || s.toReady != -1 {
		t.Errorf("summary with target 1: %+v, want 8 pods, never reached", s)
	}
	var table bytes.Buffer
	if err := writeTable(&table, []summary{s}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "| step | 8 | never | never | 2 | 2 | 2 | 6 | 1 | 110 ms | 300 ms |") {
		t.Errorf("table:\n%s", table.String())
	}
}

func TestPanicGauge(t *testing.T) {
	exposition := `# HELP autoscaler_panic_mode 1 while the autoscaler is in panic mode, else 0.
# TYPE autoscaler_panic_mode gauge
autoscaler_panic_mode{configuration_name="other",namespace_name="default",revision_name="other-00001",service_name="other"} 1
autoscaler_panic_mode{configuration_name="replay",namespace_name="default",revision_name="replay-00001",service_name="replay"} 0
autoscaler_desired_pods{configuration_name="replay",namespace_name="default",revision_name="replay-00001",service_name="replay"} 5
`
	if got := panicGauge(exposition, "replay-00001"); got != 0 {
		t.Errorf("replay-00001: %d, want 0", got)
	}
	if got := panicGauge(exposition, "other-00001"); got != 1 {
		t.Errorf("other-00001: %d, want 1", got)
	}
	if got := panicGauge(exposition, "none-00001"); got != -1 {
		t.Errorf("a revision without the gauge: %d, want -1", got)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for p, want := range map[float64]time.Duration{0.5: 50, 0.99: 99, 1: 100, 0: 1} {
		if got := percentile(d, p); got != want {
			t.Errorf("p%v of 1..100 = %d, want %d", p*100, got, want)
		}
	}
	if percentile(nil, 0.5) != 0 || percentile(d[:1], 0.99) != 1 {
		t.Error("percentile of none or one")
	}
}

func TestCSVAndPNG(t *testing.T) {
	sh := testShapes()["burst"]
	var secs []second
	for i := range 95 {
		secs = append(secs, second{t: i, offered: sh.concurrency(time.Duration(i) * time.Second), desired: 1 + i/20, ready: i / 20, panic: i / 25 % 2,
			sent: 100, ok: 100, p50: 101 * time.Millisecond, p99: time.Duration(110+i) * time.Millisecond})
	}
	secs[3].desired, secs[3].ready, secs[3].panic, secs[4].ok = -1, -1, -1, 0

	var b bytes.Buffer
	if err := writeCSV(&b, []string{"burst"}, map[string][]second{"burst": secs}); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 96 || strings.Join(rows[0], ",") != strings.Join(csvHeader, ",") {
		t.Fatalf("%d rows, header %v", len(rows), rows[0])
	}
	if got := strings.Join(rows[4], ","); got != "burst,3,0,,,,100,100,0,101.0,113.0" {
		t.Errorf("second 3: %s", got)
	}

	path := filepath.Join(t.TempDir(), "burst.png")
	if p := os.Getenv("REPLAY_TEST_PNG"); p != "" {
		path = p // to look at it
	}
	if err := renderPNG(path, "burst", secs, 10, 8); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 600 || b.Dy() < 500 {
		t.Errorf("image %v: too small to read", b)
	}
}

// TestDrivePlaysTheShape plays a short shape against a local server that takes 50 ms a
// request and counts what is in flight: the load follows the shape and stops at its bounds.
func TestDrivePlaysTheShape(t *testing.T) {
	var inFlight, most atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "svc.test" {
			http.Error(w, "wrong host "+r.Host, http.StatusNotFound)
			return
		}
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(50 * time.Millisecond)
	}))
	defer srv.Close()
	c := newClient(strings.TrimPrefix(srv.URL, "http://"), 8)
	sh := shape{name: "t", phases: []phase{{300 * time.Millisecond, 0, 0}, {time.Second, 4, 4}, {300 * time.Millisecond, 0, 0}}}

	began := time.Now()
	reqs, failures := drive(context.Background(), c, "http://svc.test/", "svc.test", sh, began, 1000)
	if took := time.Since(began); took > sh.duration()+time.Second {
		t.Errorf("drive took %s for a %s shape", took, sh.duration())
	}
	if len(failures) != 0 {
		t.Errorf("failures: %v", failures)
	}
	// Four in flight for a second at 50 ms each: about 80 requests, none outside the load.
	if len(reqs) < 40 || len(reqs) > 90 || most.Load() != 4 {
		t.Errorf("%d requests, at most %d in flight; want about 80, 4", len(reqs), most.Load())
	}
	for _, r := range reqs {
		if r.start < 300*time.Millisecond || r.start > 1300*time.Millisecond || !r.ok {
			t.Errorf("request %+v outside the load or failed", r)
		}
	}

	// The request bound holds, and a wrong answer counts as failed with its status.
	reqs, _ = drive(context.Background(), c, "http://svc.test/", "svc.test", sh, time.Now(), 10)
	if len(reqs) != 10 {
		t.Errorf("-max-requests 10: %d requests", len(reqs))
	}
	reqs, failures = drive(context.Background(), c, "http://other.test/", "other.test", shape{phases: []phase{{200 * time.Millisecond, 1, 1}}}, time.Now(), 3)
	if len(reqs) != 3 || reqs[0].ok || failures["status 404 Not Found"] != 3 {
		t.Errorf("wrong host: %d requests, failures %v", len(reqs), failures)
	}
}
