package metering

import (
	"math"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func TestBilledSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int64
	}{
		{0, 60},
		{10 * time.Second, 60},
		{59*time.Second + 999*time.Millisecond, 60},
		{60 * time.Second, 60},
		{60*time.Second + time.Millisecond, 61},
		{90 * time.Second, 90},
		{90*time.Second + 1, 91},
		{time.Hour, 3600},
		{-time.Second, 60},
	} {
		if got := BilledSeconds(t0, t0.Add(tc.d)); got != tc.want {
			t.Errorf("BilledSeconds(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func TestCostAtDefaultRates(t *testing.T) {
	r := DefaultRates()
	// 0.25 vCPU, 0.5 GB, 20 GiB of storage (all included) for an hour.
	u := r.For(Size{MilliCPU: 250, MemoryMiB: 512, StorageMiB: 20 << 10}, 3600)
	if want := 0.25*0.04048 + 0.5*0.004445; !near(r.Cost(u), want) {
		t.Errorf("cost = %v, want %v", r.Cost(u), want)
	}
	if u.VCPUSeconds != 900 || u.GBSeconds != 1800 || u.StorageGBSeconds != 0 {
		t.Errorf("usage = %+v, want 900 vCPU-s, 1800 GB-s, no extra storage", u)
	}
	// 2 vCPU, 9 GB, 50 GiB of storage for 90 s: 30 GB of storage is charged.
	u = r.For(Size{MilliCPU: 2000, MemoryMiB: 9 << 10, StorageMiB: 50 << 10}, 90)
	want := (2*90*0.04048 + 9*90*0.004445 + 30*90*0.000111) / 3600
	if !near(r.Cost(u), want) {
		t.Errorf("cost = %v, want %v", r.Cost(u), want)
	}
	// Other rates are honoured.
	r2 := Rates{VCPUHour: 1, GBHour: 2, StorageGBHour: 3, IncludedStorageGB: 10}
	u = r2.For(Size{MilliCPU: 1000, MemoryMiB: 1024, StorageMiB: 11 << 10}, 3600)
	if !near(r2.Cost(u), 1+2+3) {
		t.Errorf("cost = %v, want 6", r2.Cost(u))
	}
}

func TestParseRates(t *testing.T) {
	r, err := ParseRates(map[string]string{"_example": "anything", KeyVCPUHour: "0.05", KeyIncludedStorageGB: " 30 "})
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultRates()
	want.VCPUHour, want.IncludedStorageGB = 0.05, 30
	if r != want {
		t.Errorf("rates = %+v, want %+v", r, want)
	}
	for _, tc := range []struct {
		data map[string]string
		want []string
	}{
		{map[string]string{KeyGBHour: "cheap"}, []string{"config-metering", "gb-hour", `"cheap" is not a number`}},
		{map[string]string{KeyVCPUHour: "-1"}, []string{"vcpu-hour: -1 is not a price"}},
		{map[string]string{KeyStorageGBHour: "NaN"}, []string{"ephemeral-storage-gb-hour: NaN is not a price"}},
		{map[string]string{"vcpu-hours": "1"}, []string{"vcpu-hours: unknown key"}},
	} {
		_, err := ParseRates(tc.data)
		if err == nil {
			t.Errorf("ParseRates(%v) = nil error", tc.data)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParseRates(%v) = %q, want it to name %q", tc.data, err, w)
			}
		}
	}
	// The documentation parses to the defaults.
	if !strings.Contains(Example(), KeyVCPUHour+`: "0.04048"`) {
		t.Errorf("Example() lacks the vCPU rate:\n%s", Example())
	}
}

func rec(uid, ns, owner, profile string, milli, mib int64, start, end time.Time) Record {
	return Record{UID: uid, Namespace: ns, Pod: uid, OwnerKind: "Service", OwnerName: owner, Profile: profile,
		Size: Size{MilliCPU: milli, MemoryMiB: mib, StorageMiB: 20 << 10}, Start: start, End: end}
}

func TestSummarize(t *testing.T) {
	r := DefaultRates()
	now := t0.Add(time.Hour)
	records := []Record{
		// 10 s → billed 60 s; 90.2 s → 91 s; both of service a.
		rec("p1", "ns1", "a", "web", 250, 512, t0, t0.Add(10*time.Second)),
		rec("p2", "ns1", "a", "web", 250, 512, t0.Add(30*time.Minute), t0.Add(30*time.Minute+90200*time.Millisecond)),
		// Still running, 1 vCPU 2 GB, started 10 min before now.
		rec("p3", "ns2", "b", "", 1000, 2048, now.Add(-10*time.Minute), time.Time{}),
	}
	rep := Summarize(records, r, t0.Add(-time.Hour), now, ByService)
	if len(rep.Rows) != 2 {
		t.Fatalf("rows = %+v, want 2", rep.Rows)
	}
	a, b := rep.Rows[0], rep.Rows[1]
	if a.Key != "ns1/Service/a" || b.Key != "ns2/Service/b" {
		t.Fatalf("keys = %q, %q", a.Key, b.Key)
	}
	if a.Seconds != 151 || !near(a.VCPUSeconds, 0.25*151) || !near(a.GBSeconds, 0.5*151) || a.Pods != 2 || a.Running != 0 {
		t.Errorf("service a = %+v, want 151 s at 0.25 vCPU 0.5 GB over 2 pods", a)
	}
	if want := (0.25*151*0.04048 + 0.5*151*0.004445) / 3600; !near(a.Cost, want) {
		t.Errorf("service a cost = %v, want %v", a.Cost, want)
	}
	// Always on: one pod at its size from its first start (t0) to now, an hour.
	if want := 0.25*0.04048 + 0.5*0.004445; !near(a.AlwaysOnCost, want) || !near(a.Saving, want-a.Cost) {
		t.Errorf("service a always on = %v saving %v, want %v", a.AlwaysOnCost, a.Saving, want)
	}
	if b.Seconds != 600 || b.Running != 1 || !near(b.AlwaysOnCost, b.Cost) || !near(b.Saving, 0) {
		t.Errorf("service b = %+v, want 600 s running, always-on equal to its cost", b)
	}
	if rep.Total.Pods != 3 || !near(rep.Total.Cost, a.Cost+b.Cost) || !near(rep.Total.AlwaysOnCost, a.AlwaysOnCost+b.AlwaysOnCost) {
		t.Errorf("total = %+v", rep.Total)
	}

	// --since in the middle: p1 ended before it and is left out; p2 is whole; p3 too.
	rep = Summarize(records, r, t0.Add(20*time.Minute), now, ByNamespace)
	if len(rep.Rows) != 2 || rep.Rows[0].Key != "ns1" || rep.Rows[0].Pods != 1 || rep.Rows[0].Seconds != 91 {
		t.Errorf("since 20 min: rows = %+v", rep.Rows)
	}
	// Always on from the service's first record in the period (p2, at 30 min) to now.
	if want := (0.25*1800*0.04048 + 0.5*1800*0.004445) / 3600; !near(rep.Rows[0].AlwaysOnCost, want) {
		t.Errorf("since 20 min: always on = %v, want %v", rep.Rows[0].AlwaysOnCost, want)
	}
	// A pod that started before since is billed for its part after it, without a minimum.
	rep = Summarize(records, r, now.Add(-5*time.Minute), now, ByProfile)
	if len(rep.Rows) != 1 || rep.Rows[0].Key != "(none)" || rep.Rows[0].Seconds != 300 {
		t.Errorf("since 5 min: rows = %+v, want p3 for 300 s under (none)", rep.Rows)
	}
}

func TestParseGroup(t *testing.T) {
	if g, err := ParseGroup("profile"); err != nil || g != ByProfile {
		t.Errorf("ParseGroup(profile) = %q, %v", g, err)
	}
	if _, err := ParseGroup("team"); err == nil || !strings.Contains(err.Error(), `"team" is not one of service, namespace, profile`) {
		t.Errorf("ParseGroup(team) = %v", err)
	}
}
