package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gantry-run/gantry/internal/metering"
)

// usageDataDir is a data dir whose usage database holds two ended pods of one Knative
// Service (10 s and 90 s, at 0.25 vCPU 0.5 GB) and one running pod of a Deployment.
func usageDataDir(t *testing.T, now time.Time) string {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	s, err := metering.OpenStore(ctx, filepath.Join(dir, metering.DBPath))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := now.Add(-time.Hour)
	size := metering.Size{MilliCPU: 250, MemoryMiB: 512, StorageMiB: 20 << 10}
	for _, r := range []metering.Record{
		{UID: "u1", Namespace: "shop", Pod: "hello-1", OwnerKind: "Service", OwnerName: "hello", Profile: "web", Size: size, Start: start, End: start.Add(10 * time.Second)},
		{UID: "u2", Namespace: "shop", Pod: "hello-2", OwnerKind: "Service", OwnerName: "hello", Profile: "web", Size: size, Start: start.Add(time.Minute), End: start.Add(150 * time.Second)},
		{UID: "u3", Namespace: "jobs", Pod: "api-1", OwnerKind: "Deployment", OwnerName: "api", Profile: "batch",
			Size: metering.Size{MilliCPU: 1000, MemoryMiB: 2048, StorageMiB: 20 << 10}, Start: now.Add(-10 * time.Minute)},
	} {
		if _, err := s.Observe(ctx, r, now); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestUsageTableCSVJSON(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	dir := usageDataDir(t, now)
	run := func(o usageOptions) string {
		t.Helper()
		o.dataDir = dir
		if o.by == "" {
			o.by = "service"
		}
		if o.rates == nil {
			o.rates = map[string]string{}
		}
		var out bytes.Buffer
		if err := runUsage(context.Background(), &o, &out, now); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	// hello: 60 s + 90 s at 0.25 vCPU 0.5 GB = 37.5 vCPU-s, 75 GB-s:
	//   (37.5*0.04048 + 75*0.004445)/3600 = 0.000514270833; always on for an hour: 0.0123425 (a float just below, printed 0.012342).
	// api: 600 s at 1 vCPU 2 GB, still running: (600*0.04048 + 1200*0.004445)/3600 = 0.008228333.
	table := run(usageOptions{output: "table"})
	for _, want := range []string{
		"SERVICE  PODS  RUNNING  VCPU-SECONDS  GB-SECONDS       COST  ALWAYS-ON     SAVING",
		"jobs/Deployment/api     1        1        600.00     1200.00  $0.008228  $0.008228  $0.000000",
		"shop/Service/hello     2        0         37.50       75.00  $0.000514  $0.012342  $0.011828",
		"total     3        1        637.50     1275.00  $0.008743  $0.020571  $0.011828",
		"$0.04048 per vCPU-hour, $0.004445 per GB-hour",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}

	csv := run(usageOptions{output: "csv", by: "namespace", namespace: "shop"})
	wantCSV := "namespace,pods,running,seconds,vcpu_seconds,gb_seconds,ephemeral_storage_gb_seconds,cost,always_on_cost,saving\n" +
		"shop,2,0,150,37.5,75,0,0.0005142708333333334,0.0123425,0.011828229166666666\n"
	if !strings.HasPrefix(csv, wantCSV) {
		t.Errorf("csv:\n%s\nwant it to start with:\n%s", csv, wantCSV)
	}

	// JSON, by profile, with the vCPU rate overridden.
	var rep metering.Report
	if err := json.Unmarshal([]byte(run(usageOptions{output: "json", by: "profile", rates: map[string]string{metering.KeyVCPUHour: "1"}})), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 2 || rep.Rows[0].Key != "batch" || rep.Rows[1].Key != "web" || rep.Rates.VCPUHour != 1 {
		t.Fatalf("json report = %+v", rep)
	}
	if want := (37.5*1 + 75*0.004445) / 3600; rep.Rows[1].Cost-want > 1e-12 || want-rep.Rows[1].Cost > 1e-12 {
		t.Errorf("web cost at $1 per vCPU-hour = %v, want %v", rep.Rows[1].Cost, want)
	}

	// --since 5m: only the running pod, for 300 s.
	if out := run(usageOptions{output: "csv", since: "5m"}); !strings.Contains(out, "jobs/Deployment/api,1,1,300,300,600,") || strings.Contains(out, "hello") {
		t.Errorf("--since 5m:\n%s", out)
	}
}

func TestUsageRefusesBadFlags(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		o    usageOptions
		want string
	}{
		{usageOptions{since: "yesterday"}, `--since: "yesterday" is not a duration`},
		{usageOptions{since: "2099-01-01T00:00:00Z"}, "--since: 2099-01-01T00:00:00Z is in the future"},
		{usageOptions{by: "team"}, `--by: "team" is not one of service, namespace, profile`},
		{usageOptions{output: "yaml"}, "-o yaml: want table, csv or json"},
		{usageOptions{rates: map[string]string{metering.KeyGBHour: "free"}}, `--gb-hour: "free" is not a number`},
		{usageOptions{rates: map[string]string{metering.KeyVCPUHour: "-0.1"}}, `--vcpu-hour: "-0.1" must not be negative`},
		{usageOptions{dataDir: "/nonexistent/gantry"}, "--data-dir /nonexistent/gantry: no usage records"},
	} {
		o := tc.o
		if o.by == "" {
			o.by = "service"
		}
		if o.output == "" {
			o.output = "table"
		}
		if o.dataDir == "" {
			o.dataDir = t.TempDir()
		}
		err := runUsage(context.Background(), &o, &bytes.Buffer{}, now)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want %q", tc.o, err, tc.want)
		}
	}
}

// TestUsageCommandFlags: the command's flags reach the report (a rate flag overrides the
// server's rate; --since takes days).
func TestUsageCommandFlags(t *testing.T) {
	dir := usageDataDir(t, time.Now())
	root := NewRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"usage", "--data-dir", dir, "--since", "7d", "--vcpu-hour", "2", "--by", "namespace", "-o", "json"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var rep metering.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if rep.Rates.VCPUHour != 2 || rep.Rates.GBHour != metering.DefaultRates().GBHour || len(rep.Rows) != 2 || rep.Total.Pods != 3 {
		t.Errorf("report = %+v", rep)
	}
	if d := rep.Now.Sub(rep.Since); d != 7*24*time.Hour {
		t.Errorf("--since 7d: period %v, want 168h", d)
	}
}
