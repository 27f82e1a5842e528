package cli

import (
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/gantry-run/gantry/internal/sched"
)

func TestApplySchedPolicy(t *testing.T) {
	t.Cleanup(func() { _ = sched.Apply(0, sched.Normal) })
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		args    []string
		want    sched.Policy
		wantErr string
	}{
		{args: nil, want: sched.Batch},
		{args: []string{"--sched-policy=normal"}, want: sched.Normal},
		{args: []string{"--sched-policy=batch"}, want: sched.Batch},
		{args: []string{"--sched-policy=fifo"}, wantErr: `--sched-policy: "fifo" is not a scheduling policy`},
	} {
		cmd := &cobra.Command{}
		p := schedPolicyFlag(cmd.Flags())
		if err := cmd.Flags().Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		err := applySchedPolicy(cmd, *p, log)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: %v; want %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if got, err := sched.Of(os.Getpid()); err != nil || got != tc.want {
			t.Errorf("%v: the main thread's policy is %s, %v; want %s", tc.args, got, err, tc.want)
		}
	}
}
