package cli

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gantry-run/gantry/internal/kn"
	pav1alpha1 "github.com/gantry-run/gantry/pkg/apis/autoscaling/v1alpha1"
	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

const defaultMetricsURL = "http://127.0.0.1:9095/metrics"

func newTopCommand() *cobra.Command {
	var conn connFlags
	var metricsURL, service string
	var interval time.Duration
	var once, all bool
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Show each revision's pods, requests per second, concurrency and latency, live",
		Long: `Show, per revision, the pods its PodAutoscaler wants and has ready, and from gantry
server's Prometheus endpoint its requests per second, in-flight requests (the autoscaler's
stable concurrency) and p50/p99 latency, refreshed every --interval until interrupted.
A figure the server does not export is shown as n/a; "-" means no request in the interval.`,
		Example: `  gantry top
  gantry top -s hello --interval 5s
  gantry top --once`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval < 100*time.Millisecond {
				return fmt.Errorf("--interval %s: want 100ms or more", interval)
			}
			k, err := conn.connect()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(ctxOf(cmd), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if service != "" {
				if _, err := k.getService(ctx, service); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			live := !once && isTerminal(out)
			prev, _ := scrape(ctx, metricsURL)
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(interval):
				}
				pas := &pav1alpha1.PodAutoscalerList{}
				opts := k.listOpts(all)
				if service != "" {
					opts = append(opts, client.MatchingLabels{servingv1.ServiceLabelKey: service})
				}
				if err := k.List(ctx, pas, opts...); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return apiError(err, k.host)
				}
				cur, scrapeErr := scrape(ctx, metricsURL)
				var b strings.Builder
				if live {
					b.WriteString("\x1b[H\x1b[2J") // home, clear screen
				}
				fmt.Fprintf(&b, "%s  every %s  (Ctrl-C to stop)\n\n", now().Format(time.TimeOnly), interval)
				_ = kn.Printer{}.Top(&b, kn.TopRows(pas.Items, prev, cur))
				if scrapeErr != nil {
					fmt.Fprintf(&b, "\nmetrics: %s\n", scrapeErr)
				}
				if !live {
					b.WriteString("\n")
				}
				fmt.Fprint(out, b.String())
				if once {
					return nil
				}
				prev = cur
			}
		},
	}
	conn.addFlags(cmd)
	def := os.Getenv("GANTRY_METRICS")
	if def == "" {
		def = defaultMetricsURL
	}
	cmd.Flags().StringVar(&metricsURL, "metrics", def, "gantry server's Prometheus endpoint ($GANTRY_METRICS)")
	cmd.Flags().StringVarP(&service, "service", "s", "", "only the revisions of this service")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "time between refreshes (and the window of the rates)")
	cmd.Flags().BoolVar(&once, "once", false, "print one table (after one interval) and exit")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "every namespace")
	return cmd
}

// scrape reads the Prometheus text the endpoint serves.
func scrape(ctx context.Context, url string) (*kn.MetricsSample, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", url, err)
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	at := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("nothing answers at %s (--metrics names gantry server's endpoint)", url)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	return &kn.MetricsSample{At: at, Families: fams}, nil
}

// isTerminal reports whether w is a terminal, where top redraws in place.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
