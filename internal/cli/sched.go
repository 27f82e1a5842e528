package cli

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gantry-run/gantry/internal/sched"
)

// schedPolicyFlag adds --sched-policy to the commands whose process serves the gateway
// (gantry server, gantry controller); applySchedPolicy applies its value.
func schedPolicyFlag(f *pflag.FlagSet) *string {
	p := string(sched.Batch)
	f.StringVar(&p, "sched-policy", p, `Linux scheduling policy of this process's threads: "batch" (SCHED_BATCH: the gateway, woken by a request, does not preempt the sender and then serves several at once) or "normal" (SCHED_OTHER)`)
	return &p
}

// applySchedPolicy gives every thread of this process (and those it starts later) policy.
// A policy the flag named explicitly that cannot be applied is an error; the default that
// cannot be (a seccomp profile that forbids sched_setattr) is logged, and the process keeps
// the policy it has.
func applySchedPolicy(cmd *cobra.Command, policy string, log *slog.Logger) error {
	p, err := sched.Parse(policy)
	if err != nil {
		return fmt.Errorf("--sched-policy: %w", err)
	}
	if err := sched.Apply(0, p); err != nil {
		if cmd.Flags().Changed("sched-policy") {
			return fmt.Errorf("--sched-policy %s: %w", p, err)
		}
		log.Warn("the default scheduling policy could not be applied; set --sched-policy to choose one", "policy", p, "err", err)
	}
	return nil
}
