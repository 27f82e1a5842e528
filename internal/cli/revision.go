package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	servingv1 "github.com/gantry-run/gantry/pkg/apis/serving/v1"
)

func newRevisionCommand() *cobra.Command {
	var conn connFlags
	var gw gatewayFlags
	cmd := &cobra.Command{
		Use:     "revision",
		Aliases: []string{"revisions", "rev"},
		Short:   "List, describe and delete the revisions of Services",
		Example: `  gantry revision list
  gantry revision list -s hello
  gantry revision describe hello-00001
  gantry revision delete hello-00001`,
	}
	conn.addFlags(cmd)
	gw.addFlags(cmd)
	cmd.AddCommand(newRevisionListCommand(&conn, &gw), newRevisionDescribeCommand(&conn, &gw), newRevisionDeleteCommand(&conn))
	return cmd
}

func newRevisionListCommand(conn *connFlags, gw *gatewayFlags) *cobra.Command {
	var out outputFlags
	var service string
	var all bool
	cmd := &cobra.Command{
		Use:     "list [NAME]",
		Aliases: []string{"ls"},
		Short:   "List revisions, newest first: service, traffic, tags, generation, conditions",
		Example: `  gantry revision list
  gantry revision list -s hello -o yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: withClient(conn, &out, func(cmd *cobra.Command, args []string, k *knClient) error {
			ctx := ctxOf(cmd)
			opts := k.listOpts(all)
			if service != "" {
				if _, err := k.getService(ctx, service); err != nil {
					return err
				}
				opts = append(opts, client.MatchingLabels{servingv1.ServiceLabelKey: service})
			}
			revs := &servingv1.RevisionList{}
			if err := k.List(ctx, revs, opts...); err != nil {
				return apiError(err, k.host)
			}
			if len(args) == 1 {
				revs.Items = filterByName(revs.Items, args[0], func(r servingv1.Revision) string { return r.Name })
			}
			if out.machine() {
				return out.print(cmd.OutOrStdout(), revs)
			}
			svcs, err := k.servicesByName(ctx, all)
			if err != nil {
				return err
			}
			return gw.printer().RevisionList(cmd.OutOrStdout(), revs.Items, svcs)
		}),
	}
	out.addFlags(cmd)
	cmd.Flags().StringVarP(&service, "service", "s", "", "only the revisions of this service")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list across all namespaces")
	return cmd
}

// servicesByName maps the Services in the namespace (or all) by name.
func (k *knClient) servicesByName(ctx context.Context, all bool) (map[string]*servingv1.Service, error) {
	list := &servingv1.ServiceList{}
	if err := k.List(ctx, list, k.listOpts(all)...); err != nil {
		return nil, apiError(err, k.host)
	}
	m := make(map[string]*servingv1.Service, len(list.Items))
	for i := range list.Items {
		m[list.Items[i].Name] = &list.Items[i]
	}
	return m, nil
}

func (k *knClient) getRevision(ctx context.Context, name string) (*servingv1.Revision, error) {
	rev := &servingv1.Revision{}
	if err := k.Get(ctx, types.NamespacedName{Namespace: k.namespace, Name: name}, rev); err != nil {
		return nil, k.check(err, "revision", name)
	}
	return rev, nil
}

func newRevisionDescribeCommand(conn *connFlags, gw *gatewayFlags) *cobra.Command {
	var out outputFlags
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a revision: image, pods, environment, scale, traffic, conditions",
		Example: `  gantry revision describe hello-00001
  gantry revision describe hello-00001 -o yaml`,
		Args: cobra.ExactArgs(1),
		RunE: withClient(conn, &out, func(cmd *cobra.Command, args []string, k *knClient) error {
			ctx := ctxOf(cmd)
			rev, err := k.getRevision(ctx, args[0])
			if err != nil {
				return err
			}
			if out.machine() {
				return out.print(cmd.OutOrStdout(), rev)
			}
			var svc *servingv1.Service
			if name := rev.Labels[servingv1.ServiceLabelKey]; name != "" {
				svc, _ = k.getService(ctx, name)
			}
			return gw.printer().DescribeRevision(cmd.OutOrStdout(), rev, svc)
		}),
	}
	out.addFlags(cmd)
	return cmd
}

func newRevisionDeleteCommand(conn *connFlags) *cobra.Command {
	var wait waitFlags
	cmd := &cobra.Command{
		Use:   "delete NAME...",
		Short: "Delete revisions that no route sends traffic to",
		Long: `Delete revisions. A revision that its service's route sends traffic to or tags is
refused, naming the traffic target: move the traffic first (gantry service update --traffic).`,
		Example: `  gantry revision delete hello-00001
  gantry revision delete hello-00001 hello-00002 --no-wait`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := conn.connect()
			if err != nil {
				return err
			}
			ctx := ctxOf(cmd)
			for _, name := range args {
				rev, err := k.getRevision(ctx, name)
				if err != nil {
					return err
				}
				svcName := rev.Labels[servingv1.ServiceLabelKey]
				if svcName == "" {
					continue
				}
				svc, err := k.getService(ctx, svcName)
				if err != nil {
					continue // an orphan revision routes nothing
				}
				if used := routedAs(svc, name); used != "" {
					return fmt.Errorf("revision %s is in service %s's traffic (%s): move it first with gantry service update %s --traffic", name, svcName, used, svcName)
				}
			}
			for _, name := range args {
				if err := k.deleteAndWait(ctx, &servingv1.Revision{}, "revision", name, wait, cmd.OutOrStdout()); err != nil {
					return err
				}
			}
			return nil
		},
	}
	wait.addFlags(cmd, "it is gone")
	return cmd
}

// routedAs says how svc routes to rev ("80%", "tag stable", …), "" when it does not.
func routedAs(svc *servingv1.Service, rev string) string {
	var uses []string
	for _, t := range svc.Status.Traffic {
		if t.RevisionName != rev {
			continue
		}
		if t.Percent != nil && *t.Percent > 0 {
			uses = append(uses, fmt.Sprintf("%d%%", *t.Percent))
		}
		if t.Tag != "" {
			uses = append(uses, "tag "+t.Tag)
		}
	}
	for _, t := range svc.Spec.Traffic {
		if t.RevisionName == rev && len(uses) == 0 {
			uses = append(uses, "named in spec.traffic")
		}
	}
	return strings.Join(uses, ", ")
}
