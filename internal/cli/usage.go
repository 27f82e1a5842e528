package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantry-run/gantry/internal/controlplane"
	"github.com/gantry-run/gantry/internal/metering"
)

// usageOptions are gantry usage's flags.
type usageOptions struct {
	dataDir   string
	since     string
	namespace string
	by        string
	output    string
	// rates holds the rate flags given, by name; they override the server's.
	rates map[string]string
}

// rateFlags are the flags that override a rate, with the ConfigMap key of the same name.
var rateFlags = []struct{ name, help string }{
	{metering.KeyVCPUHour, "price of one vCPU for an hour, in dollars (default: the server's config-metering, else 0.04048)"},
	{metering.KeyGBHour, "price of one GB of memory for an hour (default: the server's, else 0.004445)"},
	{metering.KeyStorageGBHour, "price of one GB of ephemeral storage beyond the included amount for an hour (default: the server's, else 0.000111)"},
	{metering.KeyIncludedStorageGB, "ephemeral storage included at no charge, in GB (default: the server's, else 20)"},
}

func newUsageCommand() *cobra.Command {
	o := &usageOptions{dataDir: dataDirFromEnv(controlplane.DefaultDataDir), by: string(metering.ByService), output: "table", rates: map[string]string{}}
	cmd := &cobra.Command{
		Use: "usage",
		Example: `  gantry usage                                   # every serverless pod's cost so far, by service
  gantry usage --since 24h --by namespace        # the last day, by namespace
  gantry usage --since 2026-11-01T00:00:00Z -n shop -o csv
  gantry usage --vcpu-hour 0.05 -o json          # priced at another vCPU rate`,
		Short: "Show what serverless pods were provisioned, what it cost, and what scale-to-zero saved",
		Long: `Reads the usage records that gantry server keeps of every serverless pod (a pod
that carries the serverless.gantry.dev/capacity-provisioned annotation) and prices
them as Fargate bills: per provisioned vCPU and GB, from the start of the pod's
image pull to its end, rounded up to the second, with a one-minute minimum.

Beside the cost it prints what the same services would have cost with one pod each
running all the time (at its latest size, from its first record or --since to now):
the saving that scaling to zero bought.

The rates are the server's (the config-metering ConfigMap in gantry-system, default
Fargate's Linux/x86 rates in us-east-1), unless a rate flag sets one. The records
are read from <data-dir>/metering/usage.db on this machine, so run it as the user
that runs gantry server (root), beside it or after it stopped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, r := range rateFlags {
				if cmd.Flags().Changed(r.name) {
					o.rates[r.name], _ = cmd.Flags().GetString(r.name)
				}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			return runUsage(ctx, o, cmd.OutOrStdout(), time.Now())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data-dir", o.dataDir, "data directory of the gantry server (env GANTRY_DATA_DIR)")
	f.StringVar(&o.since, "since", "", "only usage from this long ago (24h, 7d, 90m) or this time (RFC 3339); default: every record")
	f.StringVarP(&o.namespace, "namespace", "n", "", "only this namespace's pods (default: all)")
	f.StringVar(&o.by, "by", o.by, "group by service, namespace or profile")
	f.StringVarP(&o.output, "output", "o", o.output, "table, csv or json")
	for _, r := range rateFlags {
		f.String(r.name, "", r.help)
	}
	_ = cmd.RegisterFlagCompletionFunc("by", cobra.FixedCompletions([]string{"service", "namespace", "profile"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"table", "csv", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// runUsage prints the report of o at now to w. Every bad flag is named before anything is read.
func runUsage(ctx context.Context, o *usageOptions, w io.Writer, now time.Time) error {
	var errs []error
	since, err := parseSince(o.since, now)
	if err != nil {
		errs = append(errs, fmt.Errorf("--since: %w", err))
	}
	by, err := metering.ParseGroup(o.by)
	if err != nil {
		errs = append(errs, fmt.Errorf("--by: %w", err))
	}
	switch o.output {
	case "table", "csv", "json":
	default:
		errs = append(errs, fmt.Errorf("-o %s: want table, csv or json", o.output))
	}
	overrides := map[string]float64{}
	for _, r := range rateFlags {
		if v, ok := o.rates[r.name]; ok {
			rate, err := metering.ParseRate(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("--%s: %w", r.name, err))
			}
			overrides[r.name] = rate
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	store, err := metering.OpenStoreReadOnly(ctx, filepath.Join(o.dataDir, metering.DBPath))
	if errors.Is(err, metering.ErrNoDatabase) {
		return fmt.Errorf("--data-dir %s: no usage records (has gantry server run on this data dir?): %w", o.dataDir, err)
	}
	if err != nil {
		return fmt.Errorf("--data-dir %s: %w", o.dataDir, err)
	}
	defer func() { _ = store.Close() }() // read-only: nothing to lose
	rates, err := store.Rates(ctx)
	if err != nil {
		return err
	}
	for name, v := range overrides {
		switch name {
		case metering.KeyVCPUHour:
			rates.VCPUHour = v
		case metering.KeyGBHour:
			rates.GBHour = v
		case metering.KeyStorageGBHour:
			rates.StorageGBHour = v
		case metering.KeyIncludedStorageGB:
			rates.IncludedStorageGB = v
		}
	}
	records, err := store.Records(ctx, since, o.namespace)
	if err != nil {
		return err
	}
	rep := metering.Summarize(records, rates, since, now, by)
	switch o.output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	case "csv":
		return usageCSV(w, rep)
	}
	return usageTable(w, rep)
}

// parseSince reads --since: a duration back from now (Go's, or whole days "7d") or an RFC
// 3339 time. Empty means every record.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		if t.After(now) {
			return time.Time{}, fmt.Errorf("%s is in the future", s)
		}
		return t, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return time.Time{}, fmt.Errorf("%q is not a number of days, a duration (24h) or a time (2026-11-01T00:00:00Z)", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d < 0 {
			return time.Time{}, fmt.Errorf("%q is not a duration (24h, 7d) or a time (2026-11-01T00:00:00Z)", s)
		}
	}
	return now.Add(-d), nil
}

func groupTitle(by metering.Group) string { return strings.ToUpper(string(by)) }

func usageTable(w io.Writer, rep metering.Report) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tPODS\tRUNNING\tVCPU-SECONDS\tGB-SECONDS\tCOST\tALWAYS-ON\tSAVING\t\n", groupTitle(rep.By))
	for _, r := range append(rep.Rows, rep.Total) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.2f\t%.2f\t$%.6f\t$%.6f\t$%.6f\t\n", r.Key, r.Pods, r.Running, r.VCPUSeconds, r.GBSeconds, r.Cost, r.AlwaysOnCost, r.Saving)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	since := "the first record"
	if !rep.Since.IsZero() {
		since = rep.Since.UTC().Format(time.RFC3339)
	}
	_, err := fmt.Fprintf(w, "\nfrom %s to %s; $%g per vCPU-hour, $%g per GB-hour, $%g per GB-hour of ephemeral storage beyond %g GB\n",
		since, rep.Now.UTC().Format(time.RFC3339), rep.Rates.VCPUHour, rep.Rates.GBHour, rep.Rates.StorageGBHour, rep.Rates.IncludedStorageGB)
	return err
}

func usageCSV(w io.Writer, rep metering.Report) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{string(rep.By), "pods", "running", "seconds", "vcpu_seconds", "gb_seconds", "ephemeral_storage_gb_seconds", "cost", "always_on_cost", "saving"})
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, r := range append(rep.Rows, rep.Total) {
		_ = cw.Write([]string{r.Key, strconv.Itoa(r.Pods), strconv.Itoa(r.Running), strconv.FormatInt(r.Seconds, 10),
			f(r.VCPUSeconds), f(r.GBSeconds), f(r.StorageGBSeconds), f(r.Cost), f(r.AlwaysOnCost), f(r.Saving)})
	}
	cw.Flush()
	return cw.Error()
}
